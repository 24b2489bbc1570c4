// FashionMnistData (mmfuse): Fashion-MNIST (datasets/fashion_mnist.h) as a data layer. Tops:
// data [N, 1, 28, 28] (pixel value * scale) and label int32 [N]; two_view: true gives view1,
// view2 [N, 1, 28, 28] (the two-view variant's [0, 1] values * 255 * scale) and label.
// Batch b is a pure function of (seed, b, phase); see docs/datasets.md ("Data layers").
#include <memory>

#include "core/layer.h"
#include "datasets/data_layer.h"
#include "datasets/fashion_mnist.h"

namespace mmfuse {
namespace {

using datasets::HostBatch;
using datasets::HostBlob;

class FashionMnistDataLayer : public Layer {
 public:
  using Layer::Layer;
  ~FashionMnistDataLayer() override { prefetcher_.reset(); }
  Arity arity() const override { return {0, 0, 2, 3}; }
  std::vector<std::string> modality_names() const override {
    if (!layer_param().fashion_mnist_param().two_view()) return {};
    return {"view1", "view2"};
  }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext& ctx) override {
    const auto& p = layer_param().fashion_mnist_param();
    two_view_ = p.two_view();
    const int tops = two_view_ ? 3 : 2;
    if (layer_param().top_size() != tops)
      fail(two_view_ ? "two_view: true takes 3 tops (view1, view2, label)" : "takes 2 tops (data, label)", ", got ",
           layer_param().top_size());
    if (p.batch_size() == 0) fail("batch_size must be positive");
    batch_ = p.batch_size();
    shard_ = datasets::batch_shard();
    scale_ = p.scale();
    dtype_ = ctx.dtype;
    const std::string split = p.train() ? "train" : "test";
    datasets::FashionMnist data;
    try {
      data = datasets::load_fashion_mnist(split, p.folder());
    } catch (const Error& e) {
      fail(e.what(), " (install Debian's dataset-fashion-mnist, or set folder / $MMFUSE_FASHION_MNIST)");
    }
    if (p.limit() > 0 && p.limit() < data.size()) {
      data.images.count = p.limit();
      data.images.pixels.resize(static_cast<size_t>(p.limit()) * 28 * 28);
      data.labels.resize(p.limit());
    }
    if (data.images.rows != 28 || data.images.cols != 28)
      fail("expected 28x28 images, got ", data.images.rows, "x", data.images.cols);
    const int64_t count = data.size();
    if (two_view_) {
      two_view_data_ = std::make_unique<datasets::TwoViewFashionMnist>(std::move(data), p.view_seed());
    } else {
      data_ = std::make_unique<datasets::FashionMnist>(std::move(data));
    }
    const uint64_t seed = p.has_seed() ? p.seed() : ctx.gen.seed();
    order_ = std::make_unique<datasets::EpochOrder>(count, seed, ctx.phase == proto::TRAIN && p.shuffle());
    prefetcher_ = std::make_unique<datasets::BatchPrefetcher>([this](int64_t b) { return make_batch(b); },
                                                              static_cast<int>(p.threads()),
                                                              static_cast<int>(p.prefetch()));
    std::vector<Shape> shapes(tops - 1, Shape{batch_, 1, 28, 28});
    shapes.push_back({batch_});
    return shapes;
  }

  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    return datasets::upload_batch(prefetcher_->get(ctx.iteration), ctx.device, dtype_);
  }

 private:
  HostBatch make_batch(int64_t b) const {
    constexpr size_t kPixels = 28 * 28;
    const int views = two_view_ ? 2 : 1;
    HostBatch batch(views + 1);
    for (int v = 0; v < views; ++v) {
      batch[v].shape = {batch_, 1, 28, 28};
      batch[v].values.resize(batch_ * kPixels);
    }
    batch[views].shape = {batch_};
    batch[views].is_int = true;
    for (int64_t j = 0; j < batch_; ++j) {
      const int64_t i = order_->sample_at(shard_.position(b, batch_, j));
      if (two_view_) {
        datasets::TwoViewSample s = two_view_data_->sample(i);
        for (size_t k = 0; k < kPixels; ++k) {
          batch[0].values[j * kPixels + k] = s.view1[k] * 255.f * scale_;
          batch[1].values[j * kPixels + k] = s.view2[k] * 255.f * scale_;
        }
        batch[2].ints.push_back(s.label);
      } else {
        const uint8_t* px = data_->images.pixels.data() + i * kPixels;
        for (size_t k = 0; k < kPixels; ++k) batch[0].values[j * kPixels + k] = px[k] * scale_;
        batch[1].ints.push_back(data_->labels[i]);
      }
    }
    return batch;
  }

  bool two_view_ = false;
  int64_t batch_ = 64;
  datasets::BatchShard shard_;
  float scale_ = 1;
  DType dtype_ = DType::f32;
  std::unique_ptr<datasets::FashionMnist> data_;
  std::unique_ptr<datasets::TwoViewFashionMnist> two_view_data_;
  std::unique_ptr<datasets::EpochOrder> order_;
  std::unique_ptr<datasets::BatchPrefetcher> prefetcher_;  // last: destroyed first
};

}  // namespace
MMF_REGISTER_LAYER(FashionMnistData, FashionMnistDataLayer)
}  // namespace mmfuse
