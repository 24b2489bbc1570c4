// Slice (Caffe; torch.split): cuts the bottom along slice_param.axis (1; or the legacy
// slice_dim when given) at the ascending slice_point values (one fewer than the tops), or
// into equal parts, one per top, without slice points. 1 bottom, 1 or more tops.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class SliceLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {1, 1, 1, -1}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().slice_param();
    const Shape& x = bottoms[0];
    int64_t nd = static_cast<int64_t>(x.size());
    axis_ = p.has_slice_dim() ? canonical_axis(p.slice_dim(), nd, "slice_dim") : canonical_axis(p.axis(), nd);
    int64_t tops = layer_param().top_size(), extent = x[axis_];
    sizes_.clear();
    if (p.slice_point_size() > 0) {
      if (p.slice_point_size() != tops - 1)
        fail(p.slice_point_size(), " slice_point values for ", tops, " tops (give one fewer than the tops)");
      int64_t prev = 0;
      for (int64_t point : p.slice_point()) {
        if (point <= prev || point >= extent)
          fail("slice points must ascend strictly inside (0, ", extent, ") for ", shape_str(x), " along axis ", axis_,
               ", got ", point, " after ", prev);
        sizes_.push_back(point - prev);
        prev = point;
      }
      sizes_.push_back(extent - prev);
    } else {
      if (extent % tops != 0)
        fail("dim ", extent, " of ", shape_str(x), " along axis ", axis_, " does not split into ", tops,
             " equal parts (give slice_point)");
      sizes_.assign(static_cast<size_t>(tops), extent / tops);
    }
    std::vector<Shape> shapes;
    for (int64_t s : sizes_) {
      shapes.push_back(x);
      shapes.back()[axis_] = s;
    }
    return shapes;
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    if (sizes_.size() == 1) return {bottoms[0]};
    return split(bottoms[0], sizes_, axis_);
  }

 private:
  int64_t axis_ = 1;
  std::vector<int64_t> sizes_;
};

}  // namespace
MMF_REGISTER_LAYER(Slice, SliceLayer)
}  // namespace mmfuse
