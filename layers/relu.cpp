// ReLU (Caffe): y = max(x, 0) + negative_slope * min(x, 0) (leaky with relu_param.negative_slope).
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class ReLULayer : public Layer {
 public:
  using Layer::Layer;
  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override { return {bottoms[0]}; }
  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    return {relu(bottoms[0], layer_param().relu_param().negative_slope())};
  }
};

}  // namespace
MMF_REGISTER_LAYER(ReLU, ReLULayer)
}  // namespace mmfuse
