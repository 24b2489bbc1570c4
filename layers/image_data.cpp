// ImageData (Caffe's): a list file of "path label" lines (datasets/list_file.h), images decoded
// as Caffe's OpenCV does (BGR; is_color: false gives one gray channel), resized to new_height x
// new_width (bilinear, half-pixel centres: OpenCV's INTER_LINEAR) when both are set, then
// transform_param (datasets/caffe_transform.h). image_data_param { source, root_folder (paths
// are root_folder + path; relative ones from the working directory, as in Caffe), batch_size,
// shuffle, rand_skip, new_height, new_width, is_color; mmfuse: prefetch, threads, seed }. Tops:
// data [N, C, H', W'] and label int32 [N]. Batch b is a pure function of (seed, b, phase).
#include <memory>

#include "core/layer.h"
#include "datasets/augment.h"
#include "datasets/caffe_transform.h"
#include "datasets/image.h"
#include "datasets/list_file.h"

namespace mmfuse {
namespace {

class ImageDataLayer : public Layer {
 public:
  using Layer::Layer;
  ~ImageDataLayer() override { prefetcher_.reset(); }
  Arity arity() const override { return {0, 0, 1, 2}; }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext& ctx) override {
    const auto& p = layer_param().image_data_param();
    if (p.source().empty()) fail("image_data_param.source (the list file) is required");
    if (p.batch_size() == 0) fail("image_data_param.batch_size must be positive");
    if ((p.new_height() > 0) != (p.new_width() > 0))
      fail("give both new_height and new_width, or neither (got ", p.new_height(), " x ", p.new_width(), ")");
    batch_ = p.batch_size();
    train_ = ctx.phase == proto::TRAIN;
    dtype_ = ctx.dtype;
    seed_ = p.has_seed() ? p.seed() : ctx.gen.seed();
    try {
      transform_ = datasets::CaffeTransform::from_param(
          datasets::with_legacy_transform(layer_param().transform_param(), p, describe()), describe());
      transform_.color = p.is_color() ? datasets::ColorMode::kColor : datasets::ColorMode::kGray;
      entries_ = datasets::read_list_file(p.source(), 1, p.root_folder().empty() ? "." : p.root_folder());
      if (entries_.empty()) fail("the list file '", p.source(), "' has no images");
      for (const auto& e : entries_)
        if (e.class_index < 0) fail(p.source(), ":", e.line, ": expected \"path label\" with an integer label");
      first_ = load(0);
      shape_ = transform_.sample_shape(first_.channels, first_.height, first_.width, describe());
    } catch (const ParseError&) {
      throw;
    } catch (const Error& e) {
      fail(e.what());
    }
    if (p.rand_skip() > 0)
      skip_ = static_cast<int64_t>(Generator(datasets::mix_seed(seed_, 0x5d1b)).below(p.rand_skip() + 1));
    order_ = std::make_unique<datasets::EpochOrder>(static_cast<int64_t>(entries_.size()), seed_, p.shuffle());
    prefetcher_ = std::make_unique<datasets::BatchPrefetcher>([this](int64_t b) { return make_batch(b); },
                                                              static_cast<int>(p.threads()),
                                                              static_cast<int>(p.prefetch()));
    std::vector<Shape> shapes{{batch_, shape_[0], shape_[1], shape_[2]}};
    if (layer_param().top_size() == 2) shapes.push_back({batch_});
    return shapes;
  }

  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    datasets::HostBatch batch = prefetcher_->get(ctx.iteration);
    batch.resize(static_cast<size_t>(layer_param().top_size()));
    return datasets::upload_batch(batch, ctx.device, dtype_);
  }

 private:
  std::string image_name(int64_t index) const {
    if (index < 0) return describe();
    const auto& e = entries_[static_cast<size_t>(index)];
    return layer_param().image_data_param().source() + ":" + std::to_string(e.line) + ": '" + e.paths[0] + "'";
  }

  datasets::CaffeSample load(int64_t index) const {
    const auto& p = layer_param().image_data_param();
    const auto& e = entries_[static_cast<size_t>(index)];
    datasets::CaffeSample s;
    try {
      s = datasets::decode_caffe_image(datasets::read_file(e.paths[0]), transform_.color, e.paths[0]);
    } catch (const Error& err) {
      throw IOError(p.source() + ":" + std::to_string(e.line) + ": " + err.what());
    }
    s.label = e.class_index;
    const int new_h = static_cast<int>(p.new_height()), new_w = static_cast<int>(p.new_width());
    if (new_h > 0 && (s.height != new_h || s.width != new_w)) {
      datasets::AugmentPlan plan;
      plan.src_h = s.height;
      plan.src_w = s.width;
      plan.scaled_h = plan.out_h = new_h;
      plan.scaled_w = plan.out_w = new_w;
      std::vector<float> resized(static_cast<size_t>(s.channels) * plan.out_h * plan.out_w);
      datasets::apply_plan(plan, s.values.data(), s.channels, /*nearest=*/false, 0.f, resized.data());
      s.values = std::move(resized);
      s.height = plan.out_h;
      s.width = plan.out_w;
    }
    return s;
  }

  datasets::HostBatch make_batch(int64_t b) const {
    return datasets::make_caffe_batch(
        b, batch_, skip_, *order_, seed_, train_, transform_, first_, [this](int64_t i) { return load(i); },
        [this](int64_t i) { return image_name(i); });
  }

  int64_t batch_ = 1, skip_ = 0;
  bool train_ = true;
  uint64_t seed_ = 0;
  DType dtype_ = DType::f32;
  datasets::CaffeTransform transform_;
  std::vector<datasets::ListEntry> entries_;
  datasets::CaffeSample first_;
  Shape shape_;
  std::unique_ptr<datasets::EpochOrder> order_;
  std::unique_ptr<datasets::BatchPrefetcher> prefetcher_;  // last: destroyed first
};

}  // namespace
MMF_REGISTER_LAYER(ImageData, ImageDataLayer)
}  // namespace mmfuse
