// CPU loops of the normalisation family: modality-aware batch norm and Philox dropout, the
// twins of cuda/norm.h (same arguments); the formulas are base/geometry/norm.h's.
//
// Batch norm sees x as [M*N, C, S] (S = product of the spatial dims) and works on G = M*C
// groups: group g = m*C + c holds x[(m*N + n), c, s] for n < N, s < S, i.e. count = N*S
// elements in N contiguous runs of S. Statistics are accumulated in double. Each direction
// reads the data at most twice:
//   forward:  pass 1 (training only) per-group sums -> mean, biased var (batch_norm_stats);
//             per group (batch_norm_prepare): running update or running stats, invstd;
//             pass 2 y = x * a + b with a = gamma*invstd, b = beta - mean*a (batch_norm_apply).
//   backward: pass 1 per-group sum(dy) and sum(dy*(x-mean)) (batch_norm_backward_reduce);
//             per group dw and db (batch_norm_param_grads);
//             pass 2 dx from the closed form (batch_norm_backward_input).
// SyncBN combines the per-group values between the steps, on the host (core/ops/norm.cpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/geometry/norm.h"
#include "base/philox.h"
#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

inline int64_t groups_grain(const BatchNormGeometry& geo) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(geo.count(), 1));
}

// Pass 1 of the training forward: per-group mean and biased variance. The sums are shifted by
// the group's first element, so that a large common offset does not cancel the variance away.
template <typename T>
void batch_norm_stats(const T* x, const BatchNormGeometry& geo, double* mean, double* var) {
  parallel_for(geo.groups(), groups_grain(geo), [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      int64_t count = geo.count();
      if (count == 0) { mean[g] = var[g] = std::nan(""); continue; }
      double shift = x[geo.run_offset(g, 0)], s1 = 0, s2 = 0;
      for (int64_t n = 0; n < geo.batch_per_modality; ++n) {
        const T* run = x + geo.run_offset(g, n);
        for (int64_t s = 0; s < geo.spatial; ++s) bn_add_moment_terms(shift, run[s], s1, s2);
      }
      bn_moments(shift, s1, s2, count, mean[g], var[g]);
    }
  });
}

// Pass 2 of the forward: y = (x - mean) * invstd * weight + bias (weight/bias may be null).
template <typename T>
void batch_norm_apply(const T* x, const BatchNormGeometry& geo, const double* mean, const double* invstd,
                      const T* weight, const T* bias, T* y) {
  int64_t rows = geo.modalities * geo.batch_per_modality * geo.channels;
  int64_t per_modality = geo.batch_per_modality * geo.channels;
  parallel_for(rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(geo.spatial, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t g = (r / per_modality) * geo.channels + r % geo.channels;
      const BnAffine k = bn_affine(g, mean, invstd, weight, bias);
      const T* px = x + r * geo.spatial;
      T* py = y + r * geo.spatial;
      for (int64_t s = 0; s < geo.spatial; ++s) py[s] = bn_apply(px[s], k);
    }
  });
}

// Between the passes, per group: the statistics to normalise with and what backward keeps.
// With batch statistics (mean, var from batch_norm_stats) and update_count > 0, the running
// statistics move towards them (the unbiased variance of update_count values); without, mean
// and var are read from the running statistics. Then invstd = 1/sqrt(var + eps).
template <typename T>
void batch_norm_prepare(T* running_mean, T* running_var, int64_t groups, bool batch_stats, int64_t update_count,
                        double momentum, double eps, double* mean, double* var, double* invstd) {
  const double unbias = bn_unbias(update_count);
  for (int64_t g = 0; g < groups; ++g) {
    if (!batch_stats) {
      mean[g] = running_mean[g];
      var[g] = running_var[g];
    } else if (update_count > 0) {
      running_mean[g] = bn_running(running_mean[g], mean[g], momentum, 1.0);
      running_var[g] = bn_running(running_var[g], var[g], momentum, unbias);
    }
    invstd[g] = bn_invstd(var[g], eps);
  }
}

// Pass 1 of the backward: per-group sum(dy) and sum(dy * (x - mean)).
template <typename T>
void batch_norm_backward_reduce(const T* dy, const T* x, const BatchNormGeometry& geo, const double* mean,
                                double* sum_dy, double* sum_dy_xmu) {
  parallel_for(geo.groups(), groups_grain(geo), [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      double s_dy = 0, s_dy_xmu = 0, mu = mean[g];
      for (int64_t n = 0; n < geo.batch_per_modality; ++n) {
        int64_t o = geo.run_offset(g, n);
        for (int64_t s = 0; s < geo.spatial; ++s) bn_add_grad_terms(mu, dy[o + s], x[o + s], s_dy, s_dy_xmu);
      }
      sum_dy[g] = s_dy;
      sum_dy_xmu[g] = s_dy_xmu;
    }
  });
}

// The parameters' gradients from the sums: dw = sum_dy_xmu * invstd, db = sum_dy (either may
// be null).
template <typename T>
void batch_norm_param_grads(const double* sum_dy, const double* sum_dy_xmu, const double* invstd, int64_t groups,
                            T* dw, T* db) {
  for (int64_t g = 0; g < groups; ++g) {
    if (dw) dw[g] = static_cast<T>(sum_dy_xmu[g] * invstd[g]);
    if (db) db[g] = static_cast<T>(sum_dy[g]);
  }
}

// Pass 2 of the backward: dx by bn_input_grad (base/geometry/norm.h); with fixed (running)
// statistics the sums are not read.
template <typename T>
void batch_norm_backward_input(const T* dy, const T* x, const BatchNormGeometry& geo, const double* mean,
                               const double* invstd, const T* weight, const double* sum_dy,
                               const double* sum_dy_xmu, bool batch_stats, T* dx) {
  int64_t rows = geo.modalities * geo.batch_per_modality * geo.channels;
  int64_t per_modality = geo.batch_per_modality * geo.channels;
  double inv_n = 1.0 / static_cast<double>(std::max<int64_t>(geo.count(), 1));
  parallel_for(rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(geo.spatial, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t g = (r / per_modality) * geo.channels + r % geo.channels;
      const BnInputGrad c = bn_input_grad(g, mean, invstd, weight, sum_dy, sum_dy_xmu, batch_stats, inv_n);
      const T* pdy = dy + r * geo.spatial;
      const T* px = batch_stats ? x + r * geo.spatial : nullptr;
      T* pdx = dx + r * geo.spatial;
      for (int64_t s = 0; s < geo.spatial; ++s) pdx[s] = bn_input_grad_of(pdy[s], px ? px[s] : T(0), c);
    }
  });
}

// Inverted dropout: element i of the stream decides element i of x, so CPU and CUDA draw the
// same mask for the same (seed, offset). y = x / (1 - p) where kept, 0 elsewhere. The backward
// is the same call on dy.
template <typename T>
void dropout_apply(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset) {
  const double scale = dropout_scale(p);
  // Words w = offset + i come 4 to a Philox counter (w >> 2). Between a ragged head and tail,
  // kCounters whole counters at a time: their Philox calls are independent (the compiler
  // interleaves them), then the mask applies to 4 * kCounters elements in a plain loop.
  constexpr int64_t kCounters = 16, kWords = 4 * kCounters;
  parallel_for(n, 32768, [&](int64_t b, int64_t e) {
    auto scalar = [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) y[i] = dropout_value(x[i], philox::word(seed, offset, static_cast<uint64_t>(i)), p, scale);
    };
    int64_t i = std::min(e, b + static_cast<int64_t>((4 - ((offset + static_cast<uint64_t>(b)) & 3)) & 3));
    scalar(b, i);
    uint32_t words[kWords];
    for (; i + kWords <= e; i += kWords) {
      const uint64_t c0 = (offset + static_cast<uint64_t>(i)) >> 2;
      for (int64_t c = 0; c < kCounters; ++c) {
        philox::U32x4 r = philox::random4(seed, c0 + static_cast<uint64_t>(c));
        for (int k = 0; k < 4; ++k) words[4 * c + k] = r.v[k];
      }
      for (int64_t k = 0; k < kWords; ++k) y[i + k] = dropout_value(x[i + k], words[k], p, scale);
    }
    scalar(i, e);
  });
}

}  // namespace mmfuse::cpu
