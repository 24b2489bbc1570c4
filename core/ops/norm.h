// Normalisation and dropout: modality-aware batch norm, Philox inverted dropout.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

#include "core/random.h"
#include "core/tensor.h"

namespace mmfuse {

struct BatchNormOptions {
  bool training = true;
  double momentum = 0.1;
  double eps = 1e-5;
  int64_t modalities = 1;  // M: x is a modality-stacked batch [M*N, C, ...]
  // SyncBN (data-parallel training, docs/distributed.md): element-wise sums of host doubles
  // over the processes. When set, training statistics are those of the union of every
  // process's batch (the mean first, then the variance about it: two calls in forward) and
  // backward sums the two per-group reductions the input gradient needs (one call). Every
  // process must run the same layers in the same order. For CUDA tensors the values are staged
  // through the host (the callee always gets host memory).
  std::function<void(double* values, size_t count)> sum_over_processes = {};
};

// Batch norm over a modality-stacked batch. x is [M*N, C, ...] (rank >= 2); modality m is the
// batch slice [m*N, (m+1)*N) and has its own statistics and parameters: weight, bias,
// running_mean and running_var each hold M*C values (shape [M, C] or [M*C]), entry m*C + c for
// channel c of modality m. Statistics are per (modality, channel) over N and the spatial dims.
//
// With M = 1 this is torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias,
// training, momentum, eps):
//  - training: normalise with the batch mean and biased variance; when running stats are given,
//    update them in place (no autograd) as running = (1-momentum)*running + momentum*batch with
//    the unbiased variance (n/(n-1)); throws when a group has a single value, like PyTorch;
//  - eval (training = false): normalise with the running stats;
//  - undefined weight/bias: no affine; undefined running stats: batch statistics always (in
//    eval too, as nn.BatchNorm with track_running_stats=False).
// Backward flows to x (through the batch statistics when they were used), weight and bias.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormOptions& options = {});
// batch_norm's checks on x's shape and the modality count alone (what a layer's setup has):
// throws the op's OpError, returns the shape of the per-(modality, channel) parameters and
// statistics, [C] for one modality and [M, C] for several.
Shape batch_norm_param_shape(const Shape& x, int64_t modalities);

// Inverted dropout (torch.nn.functional.dropout): at training, element i is kept iff the
// Philox word i of (gen.seed(), gen.take(numel)) gives uniform >= p, and kept values are
// scaled by 1/(1-p); p = 1 gives zeros. At eval or p = 0 it is the identity (a copy) and the
// generator is not advanced. The mask is recomputed from (seed, offset) in backward, not stored.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

}  // namespace mmfuse
