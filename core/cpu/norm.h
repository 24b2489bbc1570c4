// CPU loops of the normalisation family: modality-aware batch norm and Philox dropout.
//
// Batch norm sees x as [M*N, C, S] (S = product of the spatial dims) and works on G = M*C
// groups: group g = m*C + c holds x[(m*N + n), c, s] for n < N, s < S, i.e. count = N*S
// elements in N contiguous runs of S. Statistics are accumulated in double. Each direction
// reads the data at most twice:
//   forward:  pass 1 (training only) per-group sums -> mean, biased var;
//             pass 2 y = x * a + b with a = gamma*invstd, b = beta - mean*a.
//   backward: pass 1 per-group sum(dy) and sum(dy*(x-mean));
//             pass 2 dx from the closed form.
// The CUDA twin follows the same plan (one reduction kernel, one elementwise kernel each way).
#pragma once
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
        for (int64_t s = 0; s < geo.spatial; ++s) {
          double d = static_cast<double>(run[s]) - shift;
          s1 += d;
          s2 += d * d;
        }
      }
      double m1 = s1 / count;
      mean[g] = shift + m1;
      var[g] = std::max(0.0, s2 / count - m1 * m1);
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
      double a = invstd[g] * (weight ? static_cast<double>(weight[g]) : 1.0);
      double b = (bias ? static_cast<double>(bias[g]) : 0.0) - mean[g] * a;
      const T* px = x + r * geo.spatial;
      T* py = y + r * geo.spatial;
      for (int64_t s = 0; s < geo.spatial; ++s) py[s] = static_cast<T>(px[s] * a + b);
    }
  });
}

// running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance.
template <typename T>
void batch_norm_update_running(T* running_mean, T* running_var, const double* mean, const double* var,
                               int64_t groups, int64_t count, double momentum) {
  double unbias = count > 1 ? static_cast<double>(count) / static_cast<double>(count - 1) : 1.0;
  for (int64_t g = 0; g < groups; ++g) {
    running_mean[g] = static_cast<T>((1 - momentum) * running_mean[g] + momentum * mean[g]);
    running_var[g] = static_cast<T>((1 - momentum) * running_var[g] + momentum * var[g] * unbias);
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
        for (int64_t s = 0; s < geo.spatial; ++s) {
          double d = dy[o + s];
          s_dy += d;
          s_dy_xmu += d * (static_cast<double>(x[o + s]) - mu);
        }
      }
      sum_dy[g] = s_dy;
      sum_dy_xmu[g] = s_dy_xmu;
    }
  });
}

// Pass 2 of the backward. With batch statistics (the closed form through mean and variance):
//   dx = gamma * invstd * (dy - sum_dy/n - (x - mean) * invstd^2 * sum_dy_xmu/n);
// with fixed (running) statistics the per-channel affine dx = gamma * invstd * dy, and the sums
// are not read.
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
      double k = invstd[g] * (weight ? static_cast<double>(weight[g]) : 1.0);
      const T* pdy = dy + r * geo.spatial;
      T* pdx = dx + r * geo.spatial;
      if (!batch_stats) {
        for (int64_t s = 0; s < geo.spatial; ++s) pdx[s] = static_cast<T>(pdy[s] * k);
        continue;
      }
      const T* px = x + r * geo.spatial;
      double mu = mean[g], mean_dy = sum_dy[g] * inv_n;
      double proj = sum_dy_xmu[g] * inv_n * invstd[g] * invstd[g];
      for (int64_t s = 0; s < geo.spatial; ++s)
        pdx[s] = static_cast<T>(k * (pdy[s] - mean_dy - (px[s] - mu) * proj));
    }
  });
}

// Inverted dropout: element i of the stream decides element i of x, so CPU and CUDA draw the
// same mask for the same (seed, offset). y = x / (1 - p) where kept, 0 elsewhere. The backward
// is the same call on dy.
template <typename T>
void dropout_apply(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset) {
  double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
  parallel_for(n, 32768, [&](int64_t b, int64_t e) {
    // philox::word(seed, offset, i), with one Philox call per 4 consecutive words.
    uint64_t counter = ~uint64_t(0);
    philox::U32x4 block{};
    for (int64_t i = b; i < e; ++i) {
      uint64_t w = offset + static_cast<uint64_t>(i);
      if ((w >> 2) != counter) { counter = w >> 2; block = philox::random4(seed, counter); }
      bool keep = philox::uniform(block.v[w & 3]) >= p;
      y[i] = keep ? static_cast<T>(x[i] * scale) : T(0);
    }
  });
}

}  // namespace mmfuse::cpu
