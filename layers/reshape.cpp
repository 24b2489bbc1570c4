// Reshape (Caffe): reshape_param { shape { dim: ... } axis (0) num_axes (-1) } replaces the
// bottom's dims [axis, axis + num_axes) (num_axes -1: to the end; a negative axis counts from
// the end, -1 meaning "after the last dim") by `shape`, where 0 copies the bottom's dim at that
// position and one -1 is inferred. A view (no copy).
#include "core/layer.h"

namespace mmfuse {
namespace {

class ReshapeLayer : public Layer {
 public:
  using Layer::Layer;
  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    return {reshaped(bottoms[0])};
  }
  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    return {bottoms[0].reshape(reshaped(bottoms[0].shape()))};
  }

 private:
  Shape reshaped(const Shape& in) const {
    const auto& p = layer_param().reshape_param();
    int64_t nd = static_cast<int64_t>(in.size());
    int64_t start = p.axis() >= 0 ? p.axis() : nd + p.axis() + 1;
    if (start < 0 || start > nd) fail("axis ", p.axis(), " out of range for bottom ", shape_str(in));
    if (p.num_axes() < -1) fail("num_axes must be >= -1, got ", p.num_axes());
    int64_t end = p.num_axes() == -1 ? nd : start + p.num_axes();
    if (end > nd) fail("axis ", p.axis(), " + num_axes ", p.num_axes(), " exceeds the ", nd, " dims of ", shape_str(in));
    Shape out(in.begin(), in.begin() + start);
    int infer = -1;
    for (int i = 0; i < p.shape().dim_size(); ++i) {
      int64_t d = p.shape().dim(i);
      if (d == 0) {
        if (start + i >= nd) fail("dim ", i, " is 0 (copy) but bottom ", shape_str(in), " has no dim ", start + i);
        d = in[start + i];
      } else if (d == -1) {
        if (infer >= 0) fail("more than one -1 in shape");
        infer = static_cast<int>(out.size());
      } else if (d < -1) {
        fail("invalid dim ", d, " in shape");
      }
      out.push_back(d);
    }
    out.insert(out.end(), in.begin() + end, in.end());
    int64_t total = shape_numel(in), known = 1;
    for (size_t i = 0; i < out.size(); ++i)
      if (static_cast<int>(i) != infer) known *= out[i];
    if (infer >= 0) {
      if (known == 0 || total % known != 0) fail("cannot infer the -1 dim: ", total, " elements of ", shape_str(in),
                                                 " do not divide by ", known);
      out[infer] = total / known;
    }
    if (shape_numel(out) != total) fail("cannot reshape ", shape_str(in), " to ", shape_str(out));
    return out;
  }
};

}  // namespace
MMF_REGISTER_LAYER(Reshape, ReshapeLayer)
}  // namespace mmfuse
