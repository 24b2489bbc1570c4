// Softmax (Caffe; torch.softmax): along softmax_param.axis (1; negative counts from the end),
// computed from x - max for stability. 1 bottom, 1 top; no parameters.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class SoftmaxLayer : public Layer {
 public:
  using Layer::Layer;
  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    axis_ = canonical_axis(layer_param().softmax_param().axis(), static_cast<int64_t>(bottoms[0].size()));
    return {bottoms[0]};
  }
  TensorList forward(const TensorList& bottoms, ForwardContext&) override { return {softmax(bottoms[0], axis_)}; }

 private:
  int64_t axis_ = 1;
};

}  // namespace
MMF_REGISTER_LAYER(Softmax, SoftmaxLayer)
}  // namespace mmfuse
