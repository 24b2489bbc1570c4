// Dropout (Caffe's field, torch.nn.functional.dropout's numerics): inverted dropout, each
// element zeroed with probability dropout_param.dropout_ratio (0.5) and the kept ones scaled by
// 1 / (1 - ratio) in TRAIN; the identity in TEST. Masks come from the net's forward generator
// (snapshotted by the solver). 1 bottom, 1 top; no parameters.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class DropoutLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    float r = layer_param().dropout_param().dropout_ratio();
    if (!(r >= 0 && r < 1)) fail("dropout_ratio must be in [0, 1), got ", r);
    return {bottoms[0]};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext& ctx) override {
    if (ctx.phase == proto::TEST) return {bottoms[0]};
    if (!ctx.gen) fail("needs a random generator in TRAIN (ForwardContext::gen is null)");
    return {dropout(bottoms[0], layer_param().dropout_param().dropout_ratio(), true, *ctx.gen)};
  }
};

}  // namespace
MMF_REGISTER_LAYER(Dropout, DropoutLayer)
}  // namespace mmfuse
