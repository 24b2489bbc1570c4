// SyntheticRgbdData (mmfuse): the synthetic RGB-D generator (datasets/synthetic_rgbd.h) on the
// fly, no files. Tops (stacked: true): data [2N, 3, S, S] (RGB first, then depth replicated to 3
// channels) and label; stacked: false: rgb [N, 3, S, S], depth [N, 1, S, S], label. The label is
// int32 [N, S, S] (segmentation, 7 classes) or [N] (classification: true, 6 classes).
//   RGB:   (v / 255 - mean) / std with ImageNet's mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225);
//   depth: (d / 1000 - 2.75) / 0.75 for d millimetres > 0, 0 for holes (scenes span about
//          1.0-4.4 m: values in about [-2.4, 2.2]).
// Batch b is a pure function of (seed, b, phase); see docs/datasets.md ("Data layers").
#include <algorithm>
#include <memory>

#include "core/layer.h"
#include "datasets/data_layer.h"
#include "datasets/synthetic_rgbd.h"

namespace mmfuse {
namespace {

using datasets::HostBatch;
using datasets::HostBlob;

constexpr float kMean[3] = {0.485f, 0.456f, 0.406f}, kStd[3] = {0.229f, 0.224f, 0.225f};
constexpr float kDepthCentre = 2.75f, kDepthSpread = 0.75f;  // metres

class SyntheticRgbdDataLayer : public Layer {
 public:
  using Layer::Layer;
  ~SyntheticRgbdDataLayer() override { prefetcher_.reset(); }
  Arity arity() const override { return {0, 0, 2, 3}; }
  std::vector<std::string> modality_names() const override { return {"rgb", "depth"}; }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext& ctx) override {
    const auto& p = layer_param().synthetic_rgbd_param();
    stacked_ = p.stacked();
    classification_ = p.classification();
    const int tops = stacked_ ? 2 : 3;
    if (layer_param().top_size() != tops)
      fail(stacked_ ? "stacked: true takes 2 tops (data, label)" : "stacked: false takes 3 tops (rgb, depth, label)",
           ", got ", layer_param().top_size());
    if (p.batch_size() == 0) fail("batch_size must be positive");
    if (p.size() < 8 || p.size() > 4096) fail("size must be in [8, 4096], got ", p.size());
    batch_ = p.batch_size();
    shard_ = datasets::batch_shard();
    size_ = p.size();
    spec_.height = spec_.width = static_cast<int>(size_);
    seed_ = p.seed();
    first_index_ = p.first_index();
    num_samples_ = p.num_samples();
    train_ = ctx.phase == proto::TRAIN;
    mirror_ = train_ && p.mirror();
    dtype_ = ctx.dtype;
    if (num_samples_ > 0) order_ = std::make_unique<datasets::EpochOrder>(num_samples_, seed_, train_);
    prefetcher_ = std::make_unique<datasets::BatchPrefetcher>([this](int64_t b) { return make_batch(b); },
                                                              static_cast<int>(p.threads()),
                                                              static_cast<int>(p.prefetch()));
    const int64_t N = batch_, S = size_;
    Shape label = classification_ ? Shape{N} : Shape{N, S, S};
    if (stacked_) return {{2 * N, 3, S, S}, label};
    return {{N, 3, S, S}, {N, 1, S, S}, label};
  }

  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    return datasets::upload_batch(prefetcher_->get(ctx.iteration), ctx.device, dtype_);
  }

 private:
  HostBatch make_batch(int64_t b) const {
    const int64_t N = batch_, S = size_, plane = S * S;
    HostBlob rgb, depth, label;
    rgb.shape = {N, 3, S, S};
    rgb.values.resize(N * 3 * plane);
    depth.shape = {N, stacked_ ? 3 : 1, S, S};
    depth.values.resize(N * depth.shape[1] * plane);
    label.is_int = true;
    label.shape = classification_ ? Shape{N} : Shape{N, S, S};
    for (int64_t j = 0; j < N; ++j) {
      const int64_t position = shard_.position(b, N, j);
      const int64_t index = first_index_ + (order_ ? order_->sample_at(position) : position);
      if (index >= (int64_t(1) << 31))
        throw Error(describe() + ": sample index " + std::to_string(index) + " is past the generator's range 2^31");
      datasets::SyntheticRgbdSample s = classification_ ? datasets::make_synthetic_rgbd_cls(spec_, seed_, index)
                                                        : datasets::make_synthetic_rgbd(spec_, seed_, index);
      bool flip = false;
      if (mirror_) {
        Generator gen = datasets::sample_generator(seed_, b, shard_.global_index(N, j));
        flip = gen.uniform() < 0.5;
      }
      for (int64_t y = 0; y < S; ++y) {
        for (int64_t x = 0; x < S; ++x) {
          const int sx = static_cast<int>(flip ? S - 1 - x : x), sy = static_cast<int>(y);
          const int64_t o = y * S + x;
          for (int c = 0; c < 3; ++c)
            rgb.values[(j * 3 + c) * plane + o] = (s.rgb.at(sy, sx, c) / 255.f - kMean[c]) / kStd[c];
          const uint16_t mm = s.depth.at(sy, sx);
          const float d = mm == 0 ? 0.f : (mm / 1000.f - kDepthCentre) / kDepthSpread;
          for (int c = 0; c < depth.shape[1]; ++c) depth.values[(j * depth.shape[1] + c) * plane + o] = d;
          if (!classification_) label.ints.push_back(s.label.at(sy, sx));
        }
      }
      if (classification_) label.ints.push_back(s.class_index);
    }
    HostBatch batch;
    if (stacked_) {
      HostBlob data;
      data.shape = {2 * N, 3, S, S};
      data.values = std::move(rgb.values);
      data.values.insert(data.values.end(), depth.values.begin(), depth.values.end());
      batch.push_back(std::move(data));
    } else {
      batch.push_back(std::move(rgb));
      batch.push_back(std::move(depth));
    }
    batch.push_back(std::move(label));
    return batch;
  }

  datasets::SyntheticRgbdSpec spec_;
  int64_t batch_ = 8, size_ = 64, first_index_ = 0, num_samples_ = 0;
  uint64_t seed_ = 1;
  datasets::BatchShard shard_;
  bool stacked_ = true, classification_ = false, train_ = true, mirror_ = false;
  DType dtype_ = DType::f32;
  std::unique_ptr<datasets::EpochOrder> order_;
  std::unique_ptr<datasets::BatchPrefetcher> prefetcher_;  // last: destroyed first
};

}  // namespace
MMF_REGISTER_LAYER(SyntheticRgbdData, SyntheticRgbdDataLayer)
}  // namespace mmfuse
