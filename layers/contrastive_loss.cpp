// ContrastiveLoss (Caffe's, Hadsell, Chopra and LeCun 2006): for pairs (a_i, b_i) with
// similarity y_i and distance d_i = ||a_i - b_i||,
//   loss = 1/(2N) sum_i [ y_i d_i^2 + (1 - y_i) max(margin - d_i, 0)^2 ],
// or with legacy_version (Caffe's first form) (1 - y_i) max(margin - d_i^2, 0) for the
// dissimilar pairs. Bottoms: a and b [N, C, ...] of one shape, y with N elements (any dtype; as
// Caffe, a pair is similar when y truncated to an integer is non-zero). contrastive_loss_param
// { margin (1) legacy_version (false) }. Top: the loss (a scalar, loss weight 1 by default).
// The gradient is the exact one of this loss; Caffe's backward adds 1e-4 to d in a
// denominator, so its gradients of dissimilar pairs differ by a relative 1e-4 / d. d is taken
// from max(d^2, 1e-12) so that identical dissimilar pairs get gradient 0 rather than NaN.
#include <limits>

#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class ContrastiveLossLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {3, 3, 1, 1}; }
  bool is_loss() const override { return true; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const Shape &a = bottoms[0], &b = bottoms[1], &y = bottoms[2];
    if (a.size() < 2 || a != b) fail("the pair bottoms must be [N, C, ...] of one shape, got ", shape_str(a), " and ", shape_str(b));
    if (shape_numel(y) != a[0]) fail("the similarity bottom must have N = ", a[0], " elements, got ", shape_str(y));
    return {Shape{}};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().contrastive_loss_param();
    const Tensor &a = bottoms[0], &b = bottoms[1];
    const int64_t n = a.size(0);
    std::vector<double> labels = bottoms[2].to_vector<double>();
    std::vector<double> similar(labels.size());
    for (size_t i = 0; i < labels.size(); ++i) similar[i] = static_cast<int64_t>(labels[i]) != 0 ? 1.0 : 0.0;
    Tensor sim = Tensor::from_vector(similar, {n}).to(a.dtype()).to(a.device());
    std::vector<int64_t> features;
    for (int64_t d = 1; d < a.dim(); ++d) features.push_back(d);
    Tensor diff = a - b;
    Tensor dist_sq = sum(diff * diff, features);  // [N]
    const double margin = p.margin();
    Tensor apart;  // the dissimilar pairs' term
    if (p.legacy_version()) {
      apart = relu(affine(dist_sq, -1, margin));
    } else {
      Tensor dist = pow(clamp(dist_sq, 1e-12, std::numeric_limits<double>::max()), 0.5);
      Tensor gap = relu(affine(dist, -1, margin));
      apart = gap * gap;
    }
    Tensor per_pair = sim * dist_sq + affine(sim, -1, 1) * apart;
    return {sum(per_pair) * (0.5 / static_cast<double>(n))};
  }
};

}  // namespace
MMF_REGISTER_LAYER(ContrastiveLoss, ContrastiveLossLayer)
}  // namespace mmfuse
