// What Caffe's Data and ImageData layers share: a source of numbered samples (records, images)
// read through transform_param into data [N, C, H', W'] and an optional label int32 [N], with
// the epoch order, rand_skip and the prefetch pool of datasets/data_layer.h. A subclass opens
// its source in setup(), then calls start(); it says how to load and name sample i, and calls
// stop() in its destructor (the workers call load() until then).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/layer.h"
#include "datasets/caffe_transform.h"

namespace mmfuse::layers {

class CaffeSourceLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {0, 0, 1, 2}; }

  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    datasets::HostBatch batch = prefetcher_->get(ctx.iteration);
    batch.resize(static_cast<size_t>(layer_param().top_size()));  // one top: no label
    return datasets::upload_batch(batch, ctx.device, dtype_);
  }

 protected:
  struct SourceSettings {
    int64_t count = 0;  // samples
    uint32_t batch_size = 0, rand_skip = 0, threads = 0, prefetch = 0;
    bool shuffle = false;
    bool has_seed = false;
    uint64_t seed = 0;
  };
  virtual datasets::CaffeSample load(int64_t index) const = 0;
  // How errors name sample `index`; index -1: the layer.
  virtual std::string sample_name(int64_t index) const = 0;

  // The transform from transform_param (with the older files' fields of `source_param` moved in).
  template <typename SourceParam>
  void read_transform(const SourceParam& source_param) {
    transform_ = datasets::CaffeTransform::from_param(
        datasets::with_legacy_transform(layer_param().transform_param(), source_param, describe()), describe());
  }
  // Reads sample 0 for the shapes, draws the rand_skip start, starts the prefetch workers;
  // returns the top shapes. Errors are reported under the layer's name.
  std::vector<Shape> start(const SourceSettings& s, const LayerContext& ctx) {
    if (s.batch_size == 0) fail("batch_size must be positive");
    batch_ = s.batch_size;
    train_ = ctx.phase == proto::TRAIN;
    dtype_ = ctx.dtype;
    seed_ = s.has_seed ? s.seed : ctx.gen.seed();
    Shape shape;
    try {
      first_ = load(0);
      shape = transform_.sample_shape(first_.channels, first_.height, first_.width, describe());
    } catch (const ParseError&) {
      throw;
    } catch (const Error& e) {
      fail(e.what());
    }
    // Caffe's rand_skip: the first batch starts at a sample drawn in [0, rand_skip].
    if (s.rand_skip > 0)
      skip_ = static_cast<int64_t>(Generator(datasets::mix_seed(seed_, 0x5d1b)).below(uint64_t{s.rand_skip} + 1));
    order_ = std::make_unique<datasets::EpochOrder>(s.count, seed_, s.shuffle);
    shard_ = datasets::batch_shard();
    prefetcher_ = std::make_unique<datasets::BatchPrefetcher>(
        [this](int64_t b) {
          return datasets::make_caffe_batch(
              b, batch_, shard_, skip_, *order_, seed_, train_, transform_, first_, [this](int64_t i) { return load(i); },
              [this](int64_t i) { return sample_name(i); });
        },
        static_cast<int>(s.threads), static_cast<int>(s.prefetch));
    std::vector<Shape> shapes{{batch_, shape[0], shape[1], shape[2]}};
    if (layer_param().top_size() == 2) shapes.push_back({batch_});
    return shapes;
  }

  // Stops the prefetch workers (finishing and discarding a batch in the making).
  void stop() { prefetcher_.reset(); }

  datasets::CaffeTransform transform_;

 private:
  int64_t batch_ = 1, skip_ = 0;
  bool train_ = true;
  uint64_t seed_ = 0;
  DType dtype_ = DType::f32;
  datasets::CaffeSample first_;
  datasets::BatchShard shard_;
  std::unique_ptr<datasets::EpochOrder> order_;
  std::unique_ptr<datasets::BatchPrefetcher> prefetcher_;
};

}  // namespace mmfuse::layers
