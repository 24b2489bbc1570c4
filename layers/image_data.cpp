// ImageData (Caffe's): a list file of "path label" lines (datasets/list_file.h), images decoded
// as Caffe's OpenCV does (BGR; is_color: false gives one gray channel), resized to new_height x
// new_width (bilinear, half-pixel centres: OpenCV's INTER_LINEAR) when both are set, then
// transform_param (datasets/caffe_transform.h). image_data_param { source, root_folder (paths
// are root_folder + path; relative ones from the working directory, as in Caffe), batch_size,
// shuffle, rand_skip, new_height, new_width, is_color; mmfuse: prefetch, threads, seed }. Tops:
// data [N, C, H', W'] and label int32 [N]. Batch b is a pure function of (seed, b, phase).
#include "datasets/augment.h"
#include "datasets/image.h"
#include "datasets/list_file.h"
#include "layers/caffe_source.h"

namespace mmfuse {
namespace {

class ImageDataLayer : public layers::CaffeSourceLayer {
 public:
  using CaffeSourceLayer::CaffeSourceLayer;
  ~ImageDataLayer() override { stop(); }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext& ctx) override {
    const auto& p = layer_param().image_data_param();
    if (p.source().empty()) fail("image_data_param.source (the list file) is required");
    if ((p.new_height() > 0) != (p.new_width() > 0))
      fail("give both new_height and new_width, or neither (got ", p.new_height(), " x ", p.new_width(), ")");
    read_transform(p);
    transform_.color = p.is_color() ? datasets::ColorMode::kColor : datasets::ColorMode::kGray;
    try {
      entries_ = datasets::read_list_file(p.source(), 1, p.root_folder().empty() ? "." : p.root_folder());
    } catch (const Error& e) {
      fail(e.what());
    }
    if (entries_.empty()) fail("the list file '", p.source(), "' has no images");
    for (const auto& e : entries_)
      if (e.class_index < 0) fail(p.source(), ":", e.line, ": expected \"path label\" with an integer label");
    return start({static_cast<int64_t>(entries_.size()), p.batch_size(), p.rand_skip(), p.threads(), p.prefetch(),
                  p.shuffle(), p.has_seed(), p.seed()},
                 ctx);
  }

 private:
  std::string sample_name(int64_t index) const override {
    if (index < 0) return describe();
    const auto& e = entries_[static_cast<size_t>(index)];
    return layer_param().image_data_param().source() + ":" + std::to_string(e.line) + ": '" + e.paths[0] + "'";
  }

  datasets::CaffeSample load(int64_t index) const override {
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

  std::vector<datasets::ListEntry> entries_;
};

}  // namespace
MMF_REGISTER_LAYER(ImageData, ImageDataLayer)
}  // namespace mmfuse
