// Concat (Caffe; torch.cat): joins the bottoms along concat_param.axis (1; negative counts
// from the end), or the legacy concat_dim when that is given. Shapes must agree elsewhere.
// 1 or more bottoms, 1 top; no parameters.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class ConcatLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {1, -1, 1, 1}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().concat_param();
    const Shape& first = bottoms[0];
    int64_t nd = static_cast<int64_t>(first.size());
    axis_ = p.has_concat_dim() ? canonical_axis(p.concat_dim(), nd, "concat_dim") : canonical_axis(p.axis(), nd);
    Shape top = first;
    for (size_t i = 1; i < bottoms.size(); ++i) {
      const Shape& b = bottoms[i];
      bool ok = b.size() == first.size();
      for (size_t d = 0; ok && d < b.size(); ++d) ok = static_cast<int64_t>(d) == axis_ || b[d] == first[d];
      if (!ok)
        fail("bottoms must agree except along axis ", axis_, ", got ", shape_str(first), " and ", shape_str(b),
             " (bottom ", i, ")");
      top[axis_] += b[axis_];
    }
    return {top};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    if (bottoms.size() == 1) return {bottoms[0]};
    return {concat(bottoms, axis_)};
  }

 private:
  int64_t axis_ = 1;
};

}  // namespace
MMF_REGISTER_LAYER(Concat, ConcatLayer)
}  // namespace mmfuse
