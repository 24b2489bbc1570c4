// BatchNorm (Caffe's fields, torch.nn.functional.batch_norm's numerics), with mmfuse's
// modality-specific statistics and optional affine part. batch_norm_param {
//   use_global_stats  normalise with the running statistics and leave them alone; default
//                     false in TRAIN, true in TEST (Caffe). True in TRAIN freezes the
//                     statistics while gamma/beta (affine) still learn (AsymFusion's setting).
//   moving_average_fraction f (0.999)  Caffe's running averages: Caffe accumulates sums
//                     S_t = f S_{t-1} + batch_t and a scale factor s_t = f s_{t-1} + 1 and uses
//                     S_t / s_t, i.e. running += (batch - running) / s_t. We update in that form
//                     with momentum 1 / s_t and keep s_t as Caffe does, as a stored state
//                     parameter ("scale_factor", [1], on the host so that reading it costs the
//                     GPU nothing): a fresh net's first update takes the batch statistics; loaded
//                     statistics (fine-tuning, resume) continue their average, later updates
//                     tending to PyTorch's momentum 1 - f (the variance is the unbiased batch
//                     variance, as PyTorch's). A weights file from before scale_factor existed
//                     gives s = 1 / (1 - f), the value a long run converges to.
//   eps (1e-5), affine (false: Caffe's BatchNorm, followed by a Scale layer),
//   modalities M (1): the bottom is [M*N, C, ...]; each modality has its own statistics and
//                     gamma/beta,
//   scale_filler (constant 1), bias_filler (constant 0),
//   sync (false)      data-parallel training (docs/distributed.md): the training statistics of
//                     the union of all ranks' batches (SyncBN; per modality with modalities),
//                     instead of each rank's own (PyTorch DDP's default). No effect in one
//                     process. CPU only for now. }.
// Parameters, in this order: mean, variance (learnable = false; initialised 0 and 1), then with
// affine gamma, beta, then scale_factor (state, [1], initialised 0; Caffe's third blob). Shape [C] when M = 1 (Caffe's and PyTorch's), [M, C] when M > 1 (row m
// for modality m).
#include <cmath>

#include "core/distributed.h"
#include "core/filler.h"
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class BatchNormLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext& ctx) override {
    const auto& p = layer_param().batch_norm_param();
    const Shape& x = bottoms[0];
    Shape s;  // the statistics' and gamma/beta's shape
    try {
      s = batch_norm_param_shape(x, p.modalities());  // the op's own checks
    } catch (const OpError& e) {
      fail(e.what());
    }
    if (!(p.eps() > 0)) fail("eps must be positive, got ", p.eps());
    float f = p.moving_average_fraction();
    if (!(f >= 0 && f <= 1)) fail("moving_average_fraction must be in [0, 1], got ", f);
    global_stats_ = p.has_use_global_stats() ? p.use_global_stats() : ctx.phase == proto::TEST;
    add_param(ctx, "mean", s, make_filler("constant", 0), 1, 1, /*learnable=*/false);
    add_param(ctx, "variance", s, make_filler("constant", 1), 1, 1, /*learnable=*/false);
    if (p.affine()) {
      add_param(ctx, "gamma", s, p.has_scale_filler() ? p.scale_filler() : make_filler("constant", 1), 1, 1);
      add_param(ctx, "beta", s, p.has_bias_filler() ? p.bias_filler() : make_filler("constant", 0), 1, 1);
    }
    LayerContext host{ctx.gen, Device::cpu(), ctx.dtype, ctx.phase};
    scale_index_ = params().size();
    add_param(host, "scale_factor", {1}, make_filler("constant", 0), 1, 1, /*learnable=*/false);
    params().back().value_if_absent = f < 1 ? 1.0 / (1.0 - f) : 1.0;
    return {x};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().batch_norm_param();
    BatchNormOptions o;
    o.training = !global_stats_;
    o.momentum = 0;
    if (o.training) {
      // s_t = f s_{t-1} + 1 (f = 1: the plain average of all batches), momentum 1 / s_t.
      const Tensor& scale = param(scale_index_);
      double f = p.moving_average_fraction(), st = f * scale.item() + 1;
      scale.fill_(st);
      o.momentum = 1.0 / st;
    }
    o.eps = p.eps();
    o.modalities = p.modalities();
    if (p.sync() && o.training && dist::world().distributed())
      o.sum_over_processes = [what = "the SyncBN statistics of layer '" + name() + "'"](double* v, size_t n) {
        dist::world().allreduce_sum(v, n, what);
      };
    Tensor gamma = p.affine() ? param(2) : Tensor(), beta = p.affine() ? param(3) : Tensor();
    return {batch_norm(bottoms[0], gamma, beta, param(0), param(1), o)};
  }

 private:
  bool global_stats_ = false;
  size_t scale_index_ = 0;
};

}  // namespace
MMF_REGISTER_LAYER(BatchNorm, BatchNormLayer)
}  // namespace mmfuse
