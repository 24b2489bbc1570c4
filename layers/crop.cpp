// Crop (Caffe): crops bottom 0 to the shape of bottom 1 in the dims from crop_param.axis (2;
// negative counts from the end) on; the dims before axis are kept. offset: none (all 0), one
// value for every cropped dim, or one per cropped dim. Bottom 1 only gives its shape (no
// gradient flows to it). 2 bottoms, 1 top; no parameters.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class CropLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, 2, 1, 1}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().crop_param();
    const Shape &x = bottoms[0], &ref = bottoms[1];
    if (x.size() != ref.size())
      fail("bottoms must have the same rank, got ", shape_str(x), " and ", shape_str(ref));
    int64_t nd = static_cast<int64_t>(x.size());
    int64_t axis = axis_ = canonical_axis(p.axis(), nd);
    int64_t cropped = nd - axis;
    if (p.offset_size() > 1 && p.offset_size() != cropped)
      fail(p.offset_size(), " offset values for ", cropped, " cropped dims (give none, one, or one per dim from axis ",
           axis, ")");
    offsets_.assign(static_cast<size_t>(nd), 0);
    Shape size = x;
    for (int64_t d = axis; d < nd; ++d) {
      int64_t off = p.offset_size() == 0 ? 0 : p.offset(p.offset_size() == 1 ? 0 : static_cast<int>(d - axis));
      if (off + ref[d] > x[d])
        fail("crop of ", ref[d], " at offset ", off, " exceeds dim ", d, " of ", shape_str(x), " (reference ",
             shape_str(ref), ")");
      offsets_[d] = off;
      size[d] = ref[d];
    }
    return {size};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    // Dims before axis follow bottom 0 as fed, dims from axis follow bottom 1 as fed.
    const Tensor &x = bottoms[0], &ref = bottoms[1];
    Shape size = x.shape();
    for (int64_t d = axis_; d < x.dim(); ++d) size[d] = ref.size(d);
    return {crop(x, offsets_, size)};
  }

 private:
  std::vector<int64_t> offsets_;
  int64_t axis_ = 2;
};

}  // namespace
MMF_REGISTER_LAYER(Crop, CropLayer)
}  // namespace mmfuse
