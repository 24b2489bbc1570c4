// ModalityEnsemble (AsymFusion/CEN's learned ensemble of per-modality predictions): bottom
// modality-stacked logits [M*N, K, ...] -> top [N, K, ...] = sum_m softmax(alpha)_m * logits_m.
// modality_ensemble_param { modalities (2) detach (true) }: with detach the logits are constants
// (torch's logits.detach(), as in the official code: a loss on the ensemble trains alpha only).
// Parameter: alpha [M], initialised to ones (uniform weights 1/M); lr_mult/decay_mult from
// param {}.
#include "core/filler.h"
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class ModalityEnsembleLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext& ctx) override {
    const auto& p = layer_param().modality_ensemble_param();
    Shape x = bottoms[0];
    if (p.modalities() < 1) fail("modalities must be >= 1, got ", p.modalities());
    if (x.empty()) fail("expects modality-stacked logits [M*N, K, ...], got ", shape_str(x));
    if (x[0] % p.modalities() != 0)
      fail("batch of ", shape_str(x), " is not divisible by modalities = ", p.modalities());
    add_param(ctx, "alpha", {p.modalities()}, make_filler("constant", 1), 1, 1);
    x[0] /= p.modalities();
    return {x};
  }

  std::vector<double> logged_figures() const override {
    autograd::NoGradGuard no_grad;
    return softmax(param(0), 0).to_vector<double>();
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().modality_ensemble_param();
    return {modality_ensemble(bottoms[0], param(0), p.modalities(), p.detach())};
  }
};

}  // namespace
MMF_REGISTER_LAYER(ModalityEnsemble, ModalityEnsembleLayer)
}  // namespace mmfuse
