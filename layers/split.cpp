// Split (Caffe): every top is the bottom. The tensor is shared, not copied; autograd sums the
// gradients of the uses.
#include "core/layer.h"

namespace mmfuse {
namespace {

class SplitLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {1, 1, 1, -1}; }
  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    return std::vector<Shape>(layer_param().top_size(), bottoms[0]);
  }
  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    return TensorList(layer_param().top_size(), bottoms[0]);
  }
};

}  // namespace
MMF_REGISTER_LAYER(Split, SplitLayer)
}  // namespace mmfuse
