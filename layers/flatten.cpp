// Flatten (Caffe): dims [axis, end_axis] become one; flatten_param { axis (1) end_axis (-1) },
// both may be negative. A view (no copy).
#include "core/layer.h"

namespace mmfuse {
namespace {

class FlattenLayer : public Layer {
 public:
  using Layer::Layer;
  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    return {flattened(bottoms[0])};
  }
  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    return {bottoms[0].reshape(flattened(bottoms[0].shape()))};
  }

 private:
  Shape flattened(const Shape& in) const {
    const auto& p = layer_param().flatten_param();
    int64_t nd = static_cast<int64_t>(in.size());
    int64_t start = canonical_axis(p.axis(), nd, "axis"), end = canonical_axis(p.end_axis(), nd, "end_axis");
    if (end < start) fail("end_axis ", p.end_axis(), " comes before axis ", p.axis(), " for bottom ", shape_str(in));
    Shape out(in.begin(), in.begin() + start);
    int64_t merged = 1;
    for (int64_t d = start; d <= end; ++d) merged *= in[d];
    out.push_back(merged);
    out.insert(out.end(), in.begin() + end + 1, in.end());
    return out;
  }
};

}  // namespace
MMF_REGISTER_LAYER(Flatten, FlattenLayer)
}  // namespace mmfuse
