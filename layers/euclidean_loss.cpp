// EuclideanLoss (Caffe): sum((a - b)^2) / (2 N), N = the leading dim of a. The bottoms must
// agree in the leading dim and in element count (b is viewed with a's shape). Top: a scalar,
// weighted 1 in the net's loss unless loss_weight says otherwise.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class EuclideanLossLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, 2, 1, 1}; }
  bool is_loss() const override { return true; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const Shape &a = bottoms[0], &b = bottoms[1];
    if (a.empty() || b.empty() || a[0] != b[0] || shape_numel(a) != shape_numel(b))
      fail("bottoms must agree in the leading dim and element count, got ", shape_str(a), " and ", shape_str(b));
    return {Shape{}};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const Tensor& a = bottoms[0];
    Tensor diff = a - bottoms[1].reshape(a.shape());
    return {sum(diff * diff) * (0.5 / static_cast<double>(a.size(0)))};
  }
};

}  // namespace
MMF_REGISTER_LAYER(EuclideanLoss, EuclideanLossLayer)
}  // namespace mmfuse
