// L1Loss (mmfuse; torch.nn.functional.l1_loss with its default reduction 'mean'):
// loss = mean |a - b| over every element. The bottoms must have one shape. 2 bottoms, 1 top
// (a scalar), loss weight 1 by default. The gradient at a == b is 0 (torch.sign).
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class L1LossLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, 2, 1, 1}; }
  bool is_loss() const override { return true; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    if (bottoms[0] != bottoms[1])
      fail("bottoms must have one shape, got ", shape_str(bottoms[0]), " and ", shape_str(bottoms[1]));
    return {Shape{}};
  }
  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    return {l1_loss(bottoms[0], bottoms[1], Reduction::mean)};
  }
};

}  // namespace
MMF_REGISTER_LAYER(L1Loss, L1LossLayer)
}  // namespace mmfuse
