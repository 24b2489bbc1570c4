// Sigmoid (Caffe): y = 1 / (1 + exp(-x)).
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class SigmoidLayer : public Layer {
 public:
  using Layer::Layer;
  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override { return {bottoms[0]}; }
  TensorList forward(const TensorList& bottoms, ForwardContext&) override { return {sigmoid(bottoms[0])}; }
};

}  // namespace
MMF_REGISTER_LAYER(Sigmoid, SigmoidLayer)
}  // namespace mmfuse
