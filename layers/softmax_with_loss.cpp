// SoftmaxWithLoss (Caffe's fields and normalisation, torch.nn.functional.cross_entropy's
// numerics): the multinomial logistic loss of softmax over dim 1.
// Bottoms: logits [N, K, ...] and label [N, ...] of class indices (int32, or a float type
// holding integers, as Caffe's data layers give; converted to int32 by truncation). The label
// may carry extra unit dims (Caffe's [N, 1, H, W]): only its element count N * (spatial) must
// match. loss_param {
//   ignore_label   positions with this label add nothing and are not counted (none if unset)
//   normalization  VALID (default): divide by the number of non-ignored positions;
//                  FULL: by N * spatial; BATCH_SIZE: by N; NONE: by 1. Like Caffe the divisor
//                  is at least 1 (all positions ignored gives 0, not NaN). The legacy
//                  `normalize: true/false` means VALID / BATCH_SIZE.
//   modalities M (mmfuse, 1): the logits are modality-stacked [M*N, K, ...] and the label
//                  [N, ...] serves every modality; the loss is the SUM over modalities of each
//                  modality's normalised loss (AsymFusion sums its per-branch losses) }.
// Tops: the loss (a scalar, loss weight 1 by default) and optionally the softmax probabilities
// (shape of the logits, loss weight 0).
#include <limits>

#include "core/layer.h"
#include "core/ops.h"
#include "layers/loss_normalization.h"

namespace mmfuse {
namespace {

class SoftmaxWithLossLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, 2, 1, 2}; }
  bool is_loss() const override { return true; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().loss_param();
    const Shape &logits = bottoms[0], &label = bottoms[1];
    int64_t m = p.modalities();
    if (m < 1) fail("modalities must be >= 1, got ", m);
    if (logits.size() < 2) fail("logits must be [N, K, ...], got ", shape_str(logits));
    if (logits[0] % m != 0) fail("batch ", logits[0], " of logits ", shape_str(logits), " is not divisible by modalities ", m);
    Shape expect = label_shape(logits);
    if (shape_numel(label) != shape_numel(expect))
      fail("label ", shape_str(label), " does not match logits ", shape_str(logits), " (expected ", shape_str(expect),
           m > 1 ? " for the stacked logits of " + std::to_string(m) + " modalities)" : ")");
    std::vector<Shape> tops{Shape{}};
    if (layer_param().top_size() == 2) tops.push_back(logits);
    return tops;
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().loss_param();
    const Tensor& logits = bottoms[0];
    Tensor label = bottoms[1].dtype() == DType::i32 ? bottoms[1] : bottoms[1].detach().to(DType::i32);
    Shape expect = label_shape(logits.shape());
    if (label.numel() != shape_numel(expect))
      fail("label ", shape_str(label.shape()), " does not match logits ", shape_str(logits.shape()), " (expected ",
           shape_str(expect), ")");
    label = label.reshape(expect);
    int64_t m = p.modalities();
    int64_t ignore = p.has_ignore_label() ? p.ignore_label() : std::numeric_limits<int64_t>::min();
    Tensor target = m > 1 ? modality_tile(label, m) : label;
    int64_t counted = 0;  // positions not ignored, over the m tiled copies of the label
    Tensor total = cross_entropy(logits, target, ignore, Reduction::sum, &counted);
    TensorList tops{total * (1.0 / normalizer(counted / m, expect))};
    if (layer_param().top_size() == 2) tops.push_back(softmax(logits, 1));
    return tops;
  }

 private:
  // [N, d1, ...] for logits [M*N, K, d1, ...].
  Shape label_shape(const Shape& logits) const {
    Shape s{logits[0] / layer_param().loss_param().modalities()};
    s.insert(s.end(), logits.begin() + 2, logits.end());
    return s;
  }

  // Caffe's SoftmaxWithLossLayer::get_normalizer, for one modality's positions (`valid` of
  // them are not ignored: cross_entropy counted them where the label is, no host copy).
  double normalizer(int64_t valid, const Shape& shape) const {
    return loss_normalizer(layer_param().loss_param(), proto::LossParameter::VALID, valid, shape_numel(shape), shape[0]);
  }
};

}  // namespace
MMF_REGISTER_LAYER(SoftmaxWithLoss, SoftmaxWithLossLayer)
}  // namespace mmfuse
