// SceneData (mmfuse): rendered rooms (datasets/scenes.h) made on the fly, no files. `modality`
// names the tops in order (rgb, depth, normal, shading, albedo, edges; default rgb, depth), then
// the label top (int32 [N, S, S], 8 classes; classification: true, int32 [N], the 5 object
// categories of the object the camera looks at) unless `label: false`. stacked: false gives one top
// per modality, [N, C_m, S, S] (C = 3 for rgb, normal, albedo; 1 for depth, shading, edges);
// stacked: true one modality-stacked top [M·N, 3, S, S], 1-channel modalities replicated.
//   8-bit modalities: v / 127.5 - 1, in [-1, 1] (a Tanh output's range);
//   depth: metres / 4 - 1 (rooms are at most about 8 m deep: [-1, 1)).
// Mirroring flips every top and negates the normals' x component.
// Batch b is a pure function of (seed, b, phase); see docs/datasets.md ("SceneData").
#include <algorithm>
#include <memory>

#include "core/layer.h"
#include "datasets/data_layer.h"
#include "datasets/scenes.h"

namespace mmfuse {
namespace {

using datasets::HostBatch;
using datasets::HostBlob;

constexpr int kNormalModality = 2, kDepthModality = 1;

class SceneDataLayer : public Layer {
 public:
  using Layer::Layer;
  ~SceneDataLayer() override { prefetcher_.reset(); }
  Arity arity() const override { return {0, 0, 1, datasets::kSceneModalities + 1}; }
  std::vector<std::string> modality_names() const override { return names_; }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext& ctx) override {
    const auto& p = layer_param().scene_param();
    names_.clear();
    modalities_.clear();
    for (const std::string& name : p.modality()) {
      const int m = datasets::scene_modality_index(name);
      if (m < 0) fail("unknown modality '", name, "' (known: rgb, depth, normal, shading, albedo, edges)");
      names_.push_back(name);
      modalities_.push_back(m);
    }
    if (modalities_.empty()) {
      names_ = {"rgb", "depth"};
      modalities_ = {0, kDepthModality};
    }
    stacked_ = p.stacked();
    label_ = p.label();
    const int tops = (stacked_ ? 1 : static_cast<int>(modalities_.size())) + (label_ ? 1 : 0);
    if (layer_param().top_size() != tops)
      fail("takes ", tops, " tops (", stacked_ ? "one stacked top" : "one per modality",
           label_ ? ", then the label" : "", "), got ", layer_param().top_size());
    if (p.batch_size() == 0) fail("batch_size must be positive");
    if (p.size() < 8 || p.size() > 4096) fail("size must be in [8, 4096], got ", p.size());
    classification_ = p.classification();
    spec_.classification = classification_;
    if (p.min_objects() > p.max_objects() || p.max_objects() > 64)
      fail("need min_objects <= max_objects <= 64, got ", p.min_objects(), " and ", p.max_objects());
    batch_ = p.batch_size();
    size_ = p.size();
    spec_.width = spec_.height = static_cast<int>(size_);
    spec_.min_objects = static_cast<int>(p.min_objects());
    spec_.max_objects = static_cast<int>(p.max_objects());
    seed_ = p.seed();
    first_index_ = p.first_index();
    num_samples_ = p.num_samples();
    const bool train = ctx.phase == proto::TRAIN;
    mirror_ = train && p.mirror();
    dtype_ = ctx.dtype;
    if (num_samples_ > 0) order_ = std::make_unique<datasets::EpochOrder>(num_samples_, seed_, train);
    shard_ = datasets::batch_shard();
    prefetcher_ = std::make_unique<datasets::BatchPrefetcher>(
        [this](int64_t b) { return make_batch(b); }, static_cast<int>(p.threads()), static_cast<int>(p.prefetch()));
    std::vector<Shape> shapes;
    const int64_t N = batch_, S = size_, M = static_cast<int64_t>(modalities_.size());
    if (stacked_) {
      shapes.push_back({M * N, 3, S, S});
    } else {
      for (int m : modalities_) shapes.push_back({N, channels(m), S, S});
    }
    if (label_) shapes.push_back(classification_ ? Shape{N} : Shape{N, S, S});
    return shapes;
  }

  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    return datasets::upload_batch(prefetcher_->get(ctx.iteration), ctx.device, dtype_);
  }

 private:
  static int64_t channels(int modality) { return datasets::kSceneModalityChannels[modality]; }

  HostBatch make_batch(int64_t b) const {
    const int64_t N = batch_, S = size_, plane = S * S, M = static_cast<int64_t>(modalities_.size());
    std::vector<HostBlob> blobs(static_cast<size_t>(M));
    for (int64_t k = 0; k < M; ++k) {
      HostBlob& blob = blobs[static_cast<size_t>(k)];
      blob.shape = {N, stacked_ ? 3 : channels(modalities_[static_cast<size_t>(k)]), S, S};
      blob.values.resize(static_cast<size_t>(N * blob.shape[1] * plane));
    }
    HostBlob label;
    label.is_int = true;
    label.shape = classification_ ? Shape{N} : Shape{N, S, S};
    for (int64_t j = 0; j < N; ++j) {
      const int64_t position = shard_.position(b, N, j);
      const int64_t index = first_index_ + (order_ ? order_->sample_at(position) : position);
      if (index >= (int64_t(1) << 31))
        throw Error(describe() + ": sample index " + std::to_string(index) + " is past the generator's range 2^31");
      const datasets::SceneImages s = datasets::make_scene_images(spec_, seed_, index);
      bool flip = false;
      if (mirror_) {
        Generator gen = datasets::sample_generator(seed_, b, shard_.global_index(N, j));
        flip = gen.uniform() < 0.5;
      }
      for (int64_t k = 0; k < M; ++k) {
        const int m = modalities_[static_cast<size_t>(k)];
        const Image& image = s.modality(m);
        HostBlob& blob = blobs[static_cast<size_t>(k)];
        const int64_t C = blob.shape[1];
        for (int64_t c = 0; c < C; ++c) {
          const int source_channel = static_cast<int>(std::min<int64_t>(c, image.channels - 1));
          const bool negate = flip && m == kNormalModality && c == 0;
          float* dst = blob.values.data() + (j * C + c) * plane;
          for (int64_t y = 0; y < S; ++y)
            for (int64_t x = 0; x < S; ++x) {
              const uint16_t v = image.at(static_cast<int>(y), static_cast<int>(flip ? S - 1 - x : x), source_channel);
              const float value = m == kDepthModality ? v / 4000.f - 1.f : v / 127.5f - 1.f;
              dst[y * S + x] = negate ? -value : value;
            }
        }
      }
      if (label_ && classification_) label.ints.push_back(s.class_index);
      if (label_ && !classification_)
        for (int64_t y = 0; y < S; ++y)
          for (int64_t x = 0; x < S; ++x)
            label.ints.push_back(s.label.at(static_cast<int>(y), static_cast<int>(flip ? S - 1 - x : x)));
    }
    HostBatch batch;
    if (stacked_) {
      HostBlob data;
      data.shape = {M * N, 3, S, S};
      for (HostBlob& blob : blobs) data.values.insert(data.values.end(), blob.values.begin(), blob.values.end());
      batch.push_back(std::move(data));
    } else {
      for (HostBlob& blob : blobs) batch.push_back(std::move(blob));
    }
    if (label_) batch.push_back(std::move(label));
    return batch;
  }

  datasets::SceneSpec spec_;
  std::vector<std::string> names_;
  std::vector<int> modalities_;
  int64_t batch_ = 8, size_ = 64, first_index_ = 0, num_samples_ = 0;
  uint64_t seed_ = 1;
  datasets::BatchShard shard_;
  bool stacked_ = false, label_ = true, mirror_ = false, classification_ = false;
  DType dtype_ = DType::f32;
  std::unique_ptr<datasets::EpochOrder> order_;
  std::unique_ptr<datasets::BatchPrefetcher> prefetcher_;  // last: destroyed first
};

}  // namespace
MMF_REGISTER_LAYER(SceneData, SceneDataLayer)
}  // namespace mmfuse
