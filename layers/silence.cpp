// Silence (Caffe): consumes its bottoms so that they are not net outputs; no tops.
#include "core/layer.h"

namespace mmfuse {
namespace {

class SilenceLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {1, -1, 0, 0}; }
  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext&) override { return {}; }
  TensorList forward(const TensorList&, ForwardContext&) override { return {}; }
};

}  // namespace
MMF_REGISTER_LAYER(Silence, SilenceLayer)
}  // namespace mmfuse
