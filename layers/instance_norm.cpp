// InstanceNorm (torch.nn.InstanceNorm2d's numerics) over a modality-stacked batch: each sample's
// each channel is normalised with its own mean and biased variance over the spatial dims; the
// affine part (gamma, beta) and the running statistics are private to each modality (the
// translation generator's private normalisation, AsymFusion/CEN). instance_norm_param {
//   modalities M (1): the bottom is [M*N, C, H, ...];
//   affine (true): learn gamma, beta of shape [C] (M = 1) or [M, C] (row m for modality m);
//   track_running_stats (false): keep running mean/variance per (modality, channel), updated
//       in TRAIN as torch does (each instance's statistics move the average with `momentum`,
//       the unbiased variance, then averaged over the modality's instances) and used in TEST;
//       without them TEST normalises with the instance statistics too (pix2pix's setting);
//   momentum (0.1), eps (1e-5), scale_filler (constant 1), bias_filler (constant 0) }.
// Parameters in this order: with track_running_stats mean, variance (state), then with affine
// gamma, beta. Composed of batch_norm: an instance is a "channel" of the view [1, M*N*C, H*W]
// (torch's own formulation).
#include <cstdlib>

#include "base/format.h"
#include "core/filler.h"
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class InstanceNormLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext& ctx) override {
    const auto& p = layer_param().instance_norm_param();
    const Shape& x = bottoms[0];
    if (x.size() < 3) fail("expects [M*N, C, H, ...] (rank >= 3), got ", shape_str(x));
    Shape s;
    try {
      s = batch_norm_param_shape(x, p.modalities());  // the modality count's checks
    } catch (const OpError& e) {
      fail(e.what());
    }
    int64_t spatial = 1;
    for (size_t d = 2; d < x.size(); ++d) spatial *= x[d];
    if (spatial < 2) fail("needs more than one spatial value per channel to normalise, got ", shape_str(x));
    if (!(p.eps() > 0)) fail("eps must be positive, got ", p.eps());
    if (!(p.momentum() >= 0 && p.momentum() <= 1)) fail("momentum must be in [0, 1], got ", p.momentum());
    training_ = ctx.phase == proto::TRAIN;
    if (p.track_running_stats()) {
      add_param(ctx, "mean", s, make_filler("constant", 0), 1, 1, /*learnable=*/false);
      add_param(ctx, "variance", s, make_filler("constant", 1), 1, 1, /*learnable=*/false);
    }
    if (p.affine()) {
      affine_index_ = params().size();
      add_param(ctx, "gamma", s, p.has_scale_filler() ? p.scale_filler() : make_filler("constant", 1), 1, 1);
      add_param(ctx, "beta", s, p.has_bias_filler() ? p.bias_filler() : make_filler("constant", 0), 1, 1);
    }
    return {x};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().instance_norm_param();
    const Tensor& x = bottoms[0];
    const Shape& xs = x.shape();
    const int64_t modalities = p.modalities(), batch = xs[0], per = batch / modalities, channels = xs[1];
    Tensor gamma = p.affine() ? param(affine_index_) : Tensor(), beta = p.affine() ? param(affine_index_ + 1) : Tensor();
    BatchNormOptions o;
    o.eps = p.eps();
    if (p.track_running_stats() && !training_) {  // the running statistics, per modality
      o.training = false;
      o.modalities = modalities;
      return {batch_norm(x, gamma, beta, param(0), param(1), o)};
    }
    o.training = true;
    // The decimal the user wrote (0.1, not float 0.1's 0.100000001490116), as torch's momentum.
    o.momentum = std::strtod(format_number("%.7g", p.momentum()).c_str(), nullptr);
    Tensor instances = x.reshape({1, batch * channels, x.numel() / (batch * channels)});
    Tensor mean_rep, var_rep;
    if (p.track_running_stats()) {  // torch: repeat the running stats per instance, average back
      autograd::NoGradGuard no_grad;
      Shape rep{modalities, per, channels};
      mean_rep = expand_to(param(0).reshape({modalities, 1, channels}), rep).clone().reshape({batch * channels});
      var_rep = expand_to(param(1).reshape({modalities, 1, channels}), rep).clone().reshape({batch * channels});
    }
    Tensor y = batch_norm(instances, Tensor(), Tensor(), mean_rep, var_rep, o);
    if (p.track_running_stats()) {
      autograd::NoGradGuard no_grad;
      param(0).copy_(mean(mean_rep.reshape({modalities, per, channels}), {1}).reshape(param(0).shape()));
      param(1).copy_(mean(var_rep.reshape({modalities, per, channels}), {1}).reshape(param(1).shape()));
    }
    if (!p.affine()) return {y.reshape(xs)};
    Shape by_modality{modalities, per, channels, x.numel() / (batch * channels)};
    Shape coeff{modalities, 1, channels, 1};
    y = add(mul(y.reshape(by_modality), gamma.reshape(coeff)), beta.reshape(coeff));
    return {y.reshape(xs)};
  }

 private:
  bool training_ = true;
  size_t affine_index_ = 0;
};

}  // namespace
MMF_REGISTER_LAYER(InstanceNorm, InstanceNormLayer)
}  // namespace mmfuse
