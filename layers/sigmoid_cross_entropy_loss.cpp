// SigmoidCrossEntropyLoss (Caffe): the logistic loss of sigmoid(x) against targets t in [0, 1],
// l = max(x, 0) - x t + log(1 + exp(-|x|)) per element (torch's binary_cross_entropy_with_logits,
// stable for any x), summed and divided by Caffe's normaliser.
// Bottoms: logits x (any shape, N = its leading dim) and targets t with as many elements (any
// dtype; int labels are converted). loss_param {
//   ignore_label   elements whose target (truncated to an integer) equals it add nothing
//   normalization  BATCH_SIZE when unset (Caffe's default for this layer): divide by N;
//                  FULL: by the element count (= torch's reduction='mean'); VALID: by the
//                  elements not ignored; NONE: by 1. At least 1. `normalize: true` is VALID. }
// Top: the loss (a scalar, loss weight 1 by default). No gradient to the targets (Caffe refuses it).
#include "core/layer.h"
#include "core/ops.h"
#include "layers/loss_normalization.h"

namespace mmfuse {
namespace {

class SigmoidCrossEntropyLossLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, 2, 1, 1}; }
  bool is_loss() const override { return true; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const Shape &x = bottoms[0], &t = bottoms[1];
    if (x.empty()) fail("logits must have a leading (batch) dim, got ", shape_str(x));
    if (shape_numel(x) != shape_numel(t))
      fail("logits ", shape_str(x), " and targets ", shape_str(t), " must have the same element count");
    return {Shape{}};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().loss_param();
    const Tensor& x = bottoms[0];
    Tensor t = bottoms[1].detach().to(x.dtype()).reshape(x.shape());
    // |x| written as 2 relu(x) - x: its gradient at 0 then pairs with relu's, so the sum has
    // softplus's derivative 1/2 at x = 0 (abs and relu, each with derivative 0 there, would not).
    Tensor positive = relu(x);
    Tensor loss = positive - x * t + log(exp(x - positive * 2.0) + 1.0);
    int64_t valid = x.numel();
    if (p.has_ignore_label()) {
      std::vector<double> targets = bottoms[1].to_vector<double>();
      std::vector<double> keep(targets.size());
      valid = 0;
      for (size_t i = 0; i < targets.size(); ++i) {
        keep[i] = static_cast<int64_t>(targets[i]) == p.ignore_label() ? 0.0 : 1.0;
        valid += keep[i] != 0;
      }
      loss = loss * Tensor::from_vector(keep, x.shape()).to(x.dtype()).to(x.device());
    }
    double n = loss_normalizer(p, proto::LossParameter::BATCH_SIZE, valid, x.numel(), x.size(0));
    return {sum(loss) * (1.0 / n)};
  }
};

}  // namespace
MMF_REGISTER_LAYER(SigmoidCrossEntropyLoss, SigmoidCrossEntropyLossLayer)
}  // namespace mmfuse
