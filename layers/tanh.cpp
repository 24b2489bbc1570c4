// TanH (Caffe): y = tanh(x).
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class TanHLayer : public Layer {
 public:
  using Layer::Layer;
  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override { return {bottoms[0]}; }
  TensorList forward(const TensorList& bottoms, ForwardContext&) override { return {tanh(bottoms[0])}; }
};

}  // namespace
MMF_REGISTER_LAYER(TanH, TanHLayer)
}  // namespace mmfuse
