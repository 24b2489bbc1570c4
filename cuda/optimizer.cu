// The optimizer on CUDA (cuda/optimizer.h): a deterministic sum of squares (fixed chunks per
// parameter, the fixed block tree of cuda/block_reduce.cuh, then one block folding every
// partial in that tree) and one fused kernel per parameter for the update. The clip scale is computed on the device and
// read there, so nothing waits for the host between the norm and the updates.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/error.h"
#include "cuda/block_reduce.cuh"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/launch.h"
#include "cuda/optimizer.h"

namespace mmfuse::cuda {

namespace {

constexpr int kSumThreads = kBlockThreads;  // one group for block_reduce
// Elements per partial: 16 per thread of a block at least; at most 1024 partials a tensor.
constexpr int64_t kSumChunk = int64_t{kSumThreads} * 16;
constexpr int64_t kMaxPartials = 1024;

int64_t sumsq_chunk(int64_t n) {
  int64_t parts = std::clamp<int64_t>((n + kSumChunk - 1) / kSumChunk, 1, kMaxPartials);
  return std::max<int64_t>(1, (n + parts - 1) / parts);
}

// Block k sums the squares of elements [k * chunk, min(n, (k + 1) * chunk)).
template <typename T>
__global__ void __launch_bounds__(kSumThreads)
sumsq_kernel(const T* __restrict__ g, int64_t n, int64_t chunk, double* __restrict__ partials) {
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * chunk, end = min(n, begin + chunk);
  double acc = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kSumThreads) {
    double v = static_cast<double>(g[i]);
    acc += v * v;
  }
  acc = block_reduce(acc, SumOp<double>{});
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kSumThreads)
finish_norm_kernel(const double* __restrict__ partials, int64_t count, double host_sumsq, double clip,
                   double* __restrict__ norm_scale) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += kSumThreads) acc += partials[i];
  acc = block_reduce(acc, SumOp<double>{});
  if (threadIdx.x == 0) {
    double norm = sqrt(host_sumsq + acc);
    norm_scale[0] = norm;
    norm_scale[1] = (clip > 0 && norm > clip) ? clip / norm : 1.0;
  }
}

template <typename T>
__global__ void sgd_kernel(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ v, int64_t n, rules::Sgd rule,
                           const double* __restrict__ grad_scale) {
  const double scale = *grad_scale;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) rule.update(w, g, v, i, scale);
}

template <typename T>
__global__ void adam_kernel(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                            int64_t n, rules::Adam rule, const double* __restrict__ grad_scale) {
  const double scale = *grad_scale;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) rule.update(w, g, m, v, i, scale);
}

template <typename T>
__global__ void adaptive_kernel(T* __restrict__ w, const T* __restrict__ g, T* __restrict__ h, T* __restrict__ u,
                                int64_t n, rules::Adaptive rule, const double* __restrict__ grad_scale) {
  const double scale = *grad_scale;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) rule.update(w, g, h, u, i, scale);
}

}  // namespace

int64_t sumsq_partials(int64_t n) {
  if (n <= 0) return 0;
  int64_t chunk = sumsq_chunk(n);
  return (n + chunk - 1) / chunk;
}

template <typename T>
void grad_sumsq(const T* g, int64_t n, double* partials, int device) {
  const int64_t parts = sumsq_partials(n);
  if (parts == 0) return;
  sumsq_kernel<T><<<static_cast<unsigned>(parts), kSumThreads, 0, stream(device)>>>(g, n, sumsq_chunk(n), partials);
  MMF_CUDA_CHECK_LAUNCH("grad_sumsq", n, " elements in ", parts, " chunks on cuda:", device);
}

void finish_grad_norm(const double* partials, int64_t count, double host_sumsq, double clip, double* norm_scale,
                      int device) {
  finish_norm_kernel<<<1, kSumThreads, 0, stream(device)>>>(partials, count, host_sumsq, clip, norm_scale);
  MMF_CUDA_CHECK_LAUNCH("finish_grad_norm", count, " partial sums on cuda:", device);
}

template <typename T>
void sgd_update(T* w, const T* g, T* v, int64_t n, const rules::Sgd& rule, const double* grad_scale, int device) {
  if (n <= 0) return;
  sgd_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(w, g, v, n, rule, grad_scale);
  MMF_CUDA_CHECK_LAUNCH("sgd_update", n, " elements on cuda:", device);
}

template <typename T>
void adam_update(T* w, const T* g, T* m, T* v, int64_t n, const rules::Adam& rule, const double* grad_scale,
                 int device) {
  if (n <= 0) return;
  adam_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(w, g, m, v, n, rule, grad_scale);
  MMF_CUDA_CHECK_LAUNCH("adam_update", n, " elements on cuda:", device);
}

template <typename T>
void adaptive_update(T* w, const T* g, T* h, T* u, int64_t n, const rules::Adaptive& rule, const double* grad_scale,
                     int device) {
  if (n <= 0) return;
  adaptive_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(w, g, h, u, n, rule, grad_scale);
  MMF_CUDA_CHECK_LAUNCH("adaptive_update", n, " elements on cuda:", device);
}

#define MMF_OPTIM(T)                                                                                           \
  template void grad_sumsq<T>(const T*, int64_t, double*, int);                                                \
  template void sgd_update<T>(T*, const T*, T*, int64_t, const rules::Sgd&, const double*, int); \
  template void adam_update<T>(T*, const T*, T*, T*, int64_t, const rules::Adam&, const double*, int);  \
  template void adaptive_update<T>(T*, const T*, T*, T*, int64_t, const rules::Adaptive&, const double*, int);
MMF_OPTIM(float)
MMF_OPTIM(double)
#undef MMF_OPTIM

}  // namespace mmfuse::cuda
