// Batch norm and dropout on CUDA (cuda/norm.h).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "core/kernels/philox.h"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/launch.h"
#include "cuda/norm.h"
#include "cuda/scratch.h"

namespace mmfuse::cuda {

namespace {

using cpu::BatchNormGeometry;

constexpr int kNormThreads = 256;

struct Geo {
  int64_t N, C, S;
};
Geo geo_of(const BatchNormGeometry& g) { return {g.batch_per_modality, g.channels, g.spatial}; }

// Offset of element e (< N*S) of group g: cpu::BatchNormGeometry::run_offset plus s.
__device__ __forceinline__ int64_t element_offset(const Geo& g, int64_t group, int64_t e) {
  int64_t m = group / g.C, c = group % g.C, n = e / g.S, s = e % g.S;
  return ((m * g.N + n) * g.C + c) * g.S + s;
}

// Sums a and b over the block in a fixed tree (the result is valid in thread 0).
__device__ __forceinline__ void block_sum2(double& a, double& b) {
  __shared__ double sa[kNormThreads], sb[kNormThreads];
  sa[threadIdx.x] = a;
  sb[threadIdx.x] = b;
  __syncthreads();
  for (int s = kNormThreads / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) {
      sa[threadIdx.x] += sa[threadIdx.x + s];
      sb[threadIdx.x] += sb[threadIdx.x + s];
    }
    __syncthreads();
  }
  a = sa[0];
  b = sb[0];
  __syncthreads();  // the arrays are rewritten by the next group of this block
}

template <typename T>
__global__ void __launch_bounds__(kNormThreads)
bn_stats_kernel(const T* __restrict__ x, Geo g, int64_t groups, double eps, bool update, double momentum,
                T* __restrict__ running_mean, T* __restrict__ running_var, double* __restrict__ mean,
                double* __restrict__ invstd) {
  const int64_t count = g.N * g.S;
  for (int64_t group = blockIdx.x; group < groups; group += gridDim.x) {
    if (count == 0) {
      if (threadIdx.x == 0) mean[group] = invstd[group] = NAN;
      continue;
    }
    const double shift = static_cast<double>(x[element_offset(g, group, 0)]);
    double s1 = 0, s2 = 0;
    for (int64_t e = threadIdx.x; e < count; e += kNormThreads) {
      double d = static_cast<double>(x[element_offset(g, group, e)]) - shift;
      s1 += d;
      s2 += d * d;
    }
    block_sum2(s1, s2);
    if (threadIdx.x == 0) {
      double m1 = s1 / count, var = fmax(0.0, s2 / count - m1 * m1), mu = shift + m1;
      mean[group] = mu;
      invstd[group] = 1.0 / sqrt(var + eps);
      if (update) {
        double unbias = count > 1 ? static_cast<double>(count) / static_cast<double>(count - 1) : 1.0;
        running_mean[group] = static_cast<T>((1 - momentum) * static_cast<double>(running_mean[group]) + momentum * mu);
        running_var[group] =
            static_cast<T>((1 - momentum) * static_cast<double>(running_var[group]) + momentum * var * unbias);
      }
    }
  }
}

template <typename T>
__global__ void bn_fixed_stats_kernel(const T* __restrict__ running_mean, const T* __restrict__ running_var,
                                      int64_t groups, double eps, double* __restrict__ mean, double* __restrict__ invstd) {
  for (int64_t i = global_thread(); i < groups; i += grid_threads()) {
    mean[i] = static_cast<double>(running_mean[i]);
    invstd[i] = 1.0 / sqrt(static_cast<double>(running_var[i]) + eps);
  }
}

__device__ __forceinline__ int64_t group_of_row(const Geo& g, int64_t r) {
  return (r / (g.N * g.C)) * g.C + r % g.C;
}

template <typename T>
__global__ void bn_apply_kernel(const T* __restrict__ x, Geo g, int64_t n, const double* __restrict__ mean,
                                const double* __restrict__ invstd, const T* __restrict__ weight,
                                const T* __restrict__ bias, T* __restrict__ y) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t group = group_of_row(g, i / g.S);
    double a = invstd[group] * (weight ? static_cast<double>(weight[group]) : 1.0);
    double b = (bias ? static_cast<double>(bias[group]) : 0.0) - mean[group] * a;
    y[i] = static_cast<T>(static_cast<double>(x[i]) * a + b);
  }
}

template <typename T>
__global__ void __launch_bounds__(kNormThreads)
bn_backward_reduce_kernel(const T* __restrict__ dy, const T* __restrict__ x, Geo g, int64_t groups,
                          const double* __restrict__ mean, const double* __restrict__ invstd,
                          double* __restrict__ sum_dy, double* __restrict__ sum_dy_xmu, T* __restrict__ dw,
                          T* __restrict__ db) {
  const int64_t count = g.N * g.S;
  for (int64_t group = blockIdx.x; group < groups; group += gridDim.x) {
    const double mu = mean[group];
    double s_dy = 0, s_dy_xmu = 0;
    for (int64_t e = threadIdx.x; e < count; e += kNormThreads) {
      int64_t o = element_offset(g, group, e);
      double d = static_cast<double>(dy[o]);
      s_dy += d;
      s_dy_xmu += d * (static_cast<double>(x[o]) - mu);
    }
    block_sum2(s_dy, s_dy_xmu);
    if (threadIdx.x == 0) {
      sum_dy[group] = s_dy;
      sum_dy_xmu[group] = s_dy_xmu;
      if (dw) dw[group] = static_cast<T>(s_dy_xmu * invstd[group]);
      if (db) db[group] = static_cast<T>(s_dy);
    }
  }
}

template <typename T>
__global__ void bn_backward_input_kernel(const T* __restrict__ dy, const T* __restrict__ x, Geo g, int64_t n,
                                         const double* __restrict__ mean, const double* __restrict__ invstd,
                                         const T* __restrict__ weight, const double* __restrict__ sum_dy,
                                         const double* __restrict__ sum_dy_xmu, bool batch_stats, double inv_n,
                                         T* __restrict__ dx) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t group = group_of_row(g, i / g.S);
    double k = invstd[group] * (weight ? static_cast<double>(weight[group]) : 1.0);
    double d = static_cast<double>(dy[i]);
    if (!batch_stats) {
      dx[i] = static_cast<T>(d * k);
      continue;
    }
    double mean_dy = sum_dy[group] * inv_n;
    double proj = sum_dy_xmu[group] * inv_n * invstd[group] * invstd[group];
    dx[i] = static_cast<T>(k * (d - mean_dy - (static_cast<double>(x[i]) - mean[group]) * proj));
  }
}

unsigned group_blocks(int64_t groups) {
  return static_cast<unsigned>(std::clamp<int64_t>(groups, 1, kMaxBlocks));
}

// One thread per Philox counter (4 consecutive words of the stream).
template <typename T>
__global__ void dropout_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, double p, double scale,
                               uint64_t seed, uint64_t offset, int64_t counters) {
  const uint64_t first = offset >> 2;
  for (int64_t t = global_thread(); t < counters; t += grid_threads()) {
    uint64_t counter = first + static_cast<uint64_t>(t);
    philox::U32x4 block = philox::random4(seed, counter);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      uint64_t w = counter * 4 + k;
      if (w < offset) continue;
      int64_t i = static_cast<int64_t>(w - offset);
      if (i >= n) break;
      bool keep = philox::uniform(block.v[k]) >= p;
      y[i] = keep ? static_cast<T>(static_cast<double>(x[i]) * scale) : T(0);
    }
  }
}

}  // namespace

template <typename T>
void batch_norm_forward(const T* x, const BatchNormGeometry& geo, bool batch_stats, bool update_running,
                        T* running_mean, T* running_var, double momentum, double eps, const T* weight, const T* bias,
                        T* y, double* mean, double* invstd, int device) {
  cudaStream_t s = stream(device);
  const int64_t groups = geo.groups();
  const Geo g = geo_of(geo);
  if (groups > 0) {
    if (batch_stats) {
      bn_stats_kernel<T><<<group_blocks(groups), kNormThreads, 0, s>>>(x, g, groups, eps, update_running, momentum,
                                                                        running_mean, running_var, mean, invstd);
      MMF_CUDA_CHECK_LAUNCH("batch_norm_stats", groups, " groups (", geo.modalities, " modalities x ", geo.channels,
                            " channels) of ", geo.count(), " elements on cuda:", device);
    } else {
      bn_fixed_stats_kernel<T><<<grid_for(groups), kBlockThreads, 0, s>>>(running_mean, running_var, groups, eps,
                                                                           mean, invstd);
      MMF_CUDA_CHECK_LAUNCH("batch_norm_fixed_stats", groups, " groups on cuda:", device);
    }
  }
  const int64_t n = groups * geo.count();
  if (n == 0) return;
  bn_apply_kernel<T><<<grid_for(n), kBlockThreads, 0, s>>>(x, g, n, mean, invstd, weight, bias, y);
  MMF_CUDA_CHECK_LAUNCH("batch_norm_apply", n, " elements in ", groups, " groups on cuda:", device);
}

template <typename T>
void batch_norm_backward(const T* dy, const T* x, const BatchNormGeometry& geo, const double* mean,
                         const double* invstd, const T* weight, bool batch_stats, T* dx, T* dw, T* db, int device) {
  cudaStream_t s = stream(device);
  const int64_t groups = geo.groups();
  const Geo g = geo_of(geo);
  if (groups == 0) return;
  Scratch sums(2 * sizeof(double) * groups, device);
  double* sum_dy = sums.get<double>();
  double* sum_dy_xmu = sum_dy + groups;
  if (dw || db || (dx && batch_stats)) {
    bn_backward_reduce_kernel<T><<<group_blocks(groups), kNormThreads, 0, s>>>(dy, x, g, groups, mean, invstd, sum_dy,
                                                                                sum_dy_xmu, dw, db);
    MMF_CUDA_CHECK_LAUNCH("batch_norm_backward_reduce", groups, " groups of ", geo.count(), " elements on cuda:",
                          device);
  }
  const int64_t n = groups * geo.count();
  if (!dx || n == 0) return;
  double inv_n = 1.0 / static_cast<double>(std::max<int64_t>(geo.count(), 1));
  bn_backward_input_kernel<T><<<grid_for(n), kBlockThreads, 0, s>>>(dy, x, g, n, mean, invstd, weight, sum_dy,
                                                                     sum_dy_xmu, batch_stats, inv_n, dx);
  MMF_CUDA_CHECK_LAUNCH("batch_norm_backward_input", n, " elements in ", groups, " groups on cuda:", device);
}

template <typename T>
void dropout_apply(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset, int device) {
  if (n <= 0) return;
  double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
  int64_t counters = static_cast<int64_t>(((offset + static_cast<uint64_t>(n) - 1) >> 2) - (offset >> 2) + 1);
  dropout_kernel<T><<<grid_for(counters), kBlockThreads, 0, stream(device)>>>(x, y, n, p, scale, seed, offset,
                                                                              counters);
  MMF_CUDA_CHECK_LAUNCH("dropout", n, " elements on cuda:", device);
}

#define MMF_NORM(T)                                                                                       \
  template void batch_norm_forward<T>(const T*, const BatchNormGeometry&, bool, bool, T*, T*, double, double, \
                                      const T*, const T*, T*, double*, double*, int);                     \
  template void batch_norm_backward<T>(const T*, const T*, const BatchNormGeometry&, const double*,       \
                                       const double*, const T*, bool, T*, T*, T*, int);                  \
  template void dropout_apply<T>(const T*, T*, int64_t, double, uint64_t, uint64_t, int);
MMF_NORM(float)
MMF_NORM(double)
#undef MMF_NORM

}  // namespace mmfuse::cuda
