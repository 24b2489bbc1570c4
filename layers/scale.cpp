// Scale (Caffe): y = x * gamma (+ beta), gamma spanning the bottom's dims [axis, axis + num_axes)
// and broadcast over the others. scale_param { axis (1) num_axes (1; -1: to the end; 0: a
// scalar) filler (default constant 1) bias_term (false) bias_filler (default constant 0) }.
// With a second bottom, gamma is that bottom (its shape must match the dims from axis) and only
// beta is learned. Parameters: gamma, beta (in that order; beta alone with two bottoms).
#include <algorithm>

#include "core/filler.h"
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class ScaleLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {1, 2, 1, 1}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext& ctx) override {
    const auto& p = layer_param().scale_param();
    const Shape& x = bottoms[0];
    int64_t nd = static_cast<int64_t>(x.size());
    Shape gamma;
    if (bottoms.size() == 2) {
      gamma = bottoms[1];
      axis_ = canonical_axis(p.axis(), nd);
      if (axis_ + static_cast<int64_t>(gamma.size()) > nd ||
          !std::equal(gamma.begin(), gamma.end(), x.begin() + axis_))
        fail("scale bottom ", shape_str(gamma), " must match the dims of ", shape_str(x), " from axis ", axis_);
    } else {
      axis_ = canonical_axis(p.axis(), nd);
      if (p.num_axes() < -1) fail("num_axes must be >= -1, got ", p.num_axes());
      int64_t end = p.num_axes() == -1 ? nd : axis_ + p.num_axes();
      if (end > nd) fail("axis ", p.axis(), " + num_axes ", p.num_axes(), " exceeds the dims of ", shape_str(x));
      gamma.assign(x.begin() + axis_, x.begin() + end);
    }
    span_ = static_cast<int64_t>(gamma.size());
    Shape stored = gamma.empty() ? Shape{1} : gamma;
    if (bottoms.size() == 1) {
      auto filler = p.has_filler() ? p.filler() : make_filler("constant", 1);
      add_param(ctx, "gamma", stored, filler, fan_in_of(stored), fan_out_of(stored));
    }
    if (p.bias_term()) {
      auto filler = p.has_bias_filler() ? p.bias_filler() : make_filler("constant", 0);
      add_param(ctx, "beta", stored, filler, fan_in_of(stored), fan_out_of(stored));
    }
    return {x};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const Tensor& x = bottoms[0];
    size_t next = 0;
    Tensor gamma = bottoms.size() == 2 ? bottoms[1] : param(next++);
    Tensor y = x * broadcastable(gamma, x);
    if (layer_param().scale_param().bias_term()) y = y + broadcastable(param(next), x);
    return {y};
  }

 private:
  // [d_axis, ..., d_{axis+span-1}] -> the same followed by ones up to x's last dim.
  Tensor broadcastable(const Tensor& t, const Tensor& x) const {
    if (span_ == 0) return t;  // a scalar [1] broadcasts as it is
    Shape s(x.shape().begin() + axis_, x.shape().begin() + axis_ + span_);
    s.resize(s.size() + static_cast<size_t>(x.dim() - axis_ - span_), 1);
    return t.reshape(s);
  }
  int64_t axis_ = 1, span_ = 1;
};

}  // namespace
MMF_REGISTER_LAYER(Scale, ScaleLayer)
}  // namespace mmfuse
