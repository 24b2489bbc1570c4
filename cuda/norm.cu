// Batch norm and dropout on CUDA (cuda/norm.h).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/error.h"
#include "base/geometry/norm.h"
#include "base/philox.h"
#include "cuda/block_reduce.cuh"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/launch.h"
#include "cuda/norm.h"
#include "cuda/scratch.h"

namespace mmfuse::cuda {

namespace {

using cpu::BatchNormGeometry;

constexpr int kNormThreads = kBlockThreads;  // the reductions' blocks (block_reduce)

struct Geo {
  int64_t N, C, S;
};
Geo geo_of(const BatchNormGeometry& g) { return {g.batch_per_modality, g.channels, g.spatial}; }

// A group (modality m, channel c) is N planes of S contiguous elements; element e < N*S of it
// is (n, s) = (e / S, e % S). I is the index type of that split: 32-bit when N*S fits.
template <typename I>
__device__ __forceinline__ int64_t element_offset(const Geo& g, int64_t group, I e) {
  int64_t m = group / g.C, c = group % g.C;
  I S = static_cast<I>(g.S), n = e / S, s = e - n * S;
  return ((m * g.N + static_cast<int64_t>(n)) * g.C + c) * g.S + static_cast<int64_t>(s);
}

// The per-group reductions (statistics forward, sum(dy) and sum(dy (x - mean)) backward) are
// cut into `chunks` equal ranges of each group's N*S elements, one block per (chunk, group),
// so that a few channels with large maps still fill the GPU. The cut depends on the shape
// only, and the partial sums are folded in chunk order: deterministic on any GPU.
int64_t reduce_chunks(int64_t groups, int64_t count) {
  constexpr int64_t kTargetBlocks = 2048, kMinChunk = 16 * kNormThreads;
  int64_t want = (kTargetBlocks + groups - 1) / std::max<int64_t>(groups, 1);
  return std::clamp<int64_t>(std::min(want, count / kMinChunk), 1, 1024);
}
dim3 reduce_grid(int64_t groups, int64_t chunks) {
  return dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(std::clamp<int64_t>(groups, 1, 65535)));
}

// The chunk partials of a two-term reduction: [groups, chunks] sums of each term.
struct Partials {
  double* s1;
  double* s2;
  int64_t chunks;
  __device__ void store(int64_t group, int64_t chunk, double a, double b) const {
    s1[group * chunks + chunk] = a;
    s2[group * chunks + chunk] = b;
  }
  // The group's partials folded in chunk order (deterministic).
  __device__ void fold(int64_t group, double& a, double& b) const {
    a = b = 0;
    for (int64_t k = 0; k < chunks; ++k) a += s1[group * chunks + k], b += s2[group * chunks + k];
  }
};

// Device memory for the partials of `groups` groups of `count` elements (caching allocator,
// returned at scope exit in stream order).
class PartialSums {
 public:
  PartialSums(int64_t groups, int64_t count, int device)
      : groups_(groups), chunks_(reduce_chunks(groups, count)),
        buffer_(2 * sizeof(double) * groups * chunks_, device) {}
  Partials view() const {
    double* p = buffer_.get<double>();
    return {p, p + groups_ * chunks_, chunks_};
  }
  int64_t chunks() const { return chunks_; }

 private:
  int64_t groups_, chunks_;
  Scratch buffer_;
};

// Partial sums of a pair of per-element terms over chunk blockIdx.x of each group.
// Terms::prepare(group) gives the group's constant (the shift, the mean), Terms::load(o) reads
// the element at offset o and Terms::add(k, loaded, s1, s2) adds its two terms.
template <typename I, typename Terms>
__global__ void __launch_bounds__(kNormThreads)
bn_partial_kernel(Geo g, int64_t groups, Partials parts, Terms terms) {
  const I count = static_cast<I>(g.N * g.S);
  const I e0 = static_cast<I>(static_cast<int64_t>(count) * blockIdx.x / parts.chunks);
  const I e1 = static_cast<I>(static_cast<int64_t>(count) * (blockIdx.x + 1) / parts.chunks);
  for (int64_t group = blockIdx.y; group < groups; group += gridDim.y) {
    const double k = terms.prepare(g, group);
    double s1 = 0, s2 = 0;
    // Four independent loads in flight per thread, then the same per-thread order as one
    // element at a time (the sums do not depend on the unrolling).
    I e = e0 + threadIdx.x;
    for (; e + 3 * kNormThreads < e1; e += 4 * kNormThreads) {
      typename Terms::Loaded v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) v[u] = terms.load(element_offset<I>(g, group, e + u * kNormThreads));
#pragma unroll
      for (int u = 0; u < 4; ++u) terms.add(k, v[u], s1, s2);
    }
    for (; e < e1; e += kNormThreads) terms.add(k, terms.load(element_offset<I>(g, group, e)), s1, s2);
    const DoublePair sums = block_reduce(DoublePair{s1, s2}, PairSumOp{});
    if (threadIdx.x == 0) parts.store(group, blockIdx.x, sums.a, sums.b);
  }
}

template <typename T>
struct StatTerms {  // x - shift and its square; the shift is the group's first element (as the CPU)
  const T* __restrict__ x;
  __device__ double prepare(const Geo& g, int64_t group) const {
    return static_cast<double>(x[element_offset<int64_t>(g, group, 0)]);
  }
  using Loaded = T;
  __device__ T load(int64_t o) const { return x[o]; }
  __device__ void add(double shift, T v, double& s1, double& s2) const { cpu::bn_add_moment_terms(shift, v, s1, s2); }
};

template <typename T>
struct GradTerms {  // dy and dy (x - mean)
  const T* __restrict__ dy;
  const T* __restrict__ x;
  const double* __restrict__ mean;
  __device__ double prepare(const Geo&, int64_t group) const { return mean[group]; }
  struct Loaded {
    T dy, x;
  };
  __device__ Loaded load(int64_t o) const { return {dy[o], x[o]}; }
  __device__ void add(double mu, Loaded v, double& s1, double& s2) const {
    cpu::bn_add_grad_terms(mu, v.dy, v.x, s1, s2);
  }
};

// Fills the partials of every group: bn_partial_kernel, with 32-bit element indices where a
// group fits; groups without elements get zeros.
template <typename Terms>
void launch_partials(const Geo& g, int64_t groups, const Partials& parts, const Terms& terms, cudaStream_t s) {
  const int64_t count = g.N * g.S;
  const dim3 grid = reduce_grid(groups, parts.chunks);
  if (count == 0)
    MMF_CUDA_CHECK(cudaMemsetAsync(parts.s1, 0, 2 * sizeof(double) * groups * parts.chunks, s));
  else if (count < (int64_t{1} << 31))
    bn_partial_kernel<uint32_t, Terms><<<grid, kNormThreads, 0, s>>>(g, groups, parts, terms);
  else
    bn_partial_kernel<uint64_t, Terms><<<grid, kNormThreads, 0, s>>>(g, groups, parts, terms);
}

// One thread per group: the chunk partials folded in order, then mean and biased variance.
template <typename T>
__global__ void bn_stats_finish_kernel(const T* __restrict__ x, Geo g, int64_t groups, Partials parts,
                                       double* __restrict__ mean, double* __restrict__ var) {
  const int64_t count = g.N * g.S;
  for (int64_t group = global_thread(); group < groups; group += grid_threads()) {
    if (count == 0) {
      mean[group] = var[group] = NAN;
      continue;
    }
    double s1, s2;
    parts.fold(group, s1, s2);
    const double shift = static_cast<double>(x[element_offset<int64_t>(g, group, 0)]);
    cpu::bn_moments(shift, s1, s2, count, mean[group], var[group]);
  }
}

// cpu::batch_norm_prepare, one thread per group.
template <typename T>
__global__ void bn_prepare_kernel(T* __restrict__ running_mean, T* __restrict__ running_var, int64_t groups,
                                  bool batch_stats, int64_t update_count, double momentum, double eps,
                                  double* __restrict__ mean, double* __restrict__ var, double* __restrict__ invstd) {
  const double unbias = cpu::bn_unbias(update_count);
  for (int64_t group = global_thread(); group < groups; group += grid_threads()) {
    if (!batch_stats) {
      mean[group] = static_cast<double>(running_mean[group]);
      var[group] = static_cast<double>(running_var[group]);
    } else if (update_count > 0) {
      running_mean[group] = cpu::bn_running(running_mean[group], mean[group], momentum, 1.0);
      running_var[group] = cpu::bn_running(running_var[group], var[group], momentum, unbias);
    }
    invstd[group] = cpu::bn_invstd(var[group], eps);
  }
}

// One thread per group: the chunk partials folded in order.
__global__ void bn_grad_finish_kernel(int64_t groups, Partials parts, double* __restrict__ sum_dy,
                                      double* __restrict__ sum_dy_xmu) {
  for (int64_t group = global_thread(); group < groups; group += grid_threads())
    parts.fold(group, sum_dy[group], sum_dy_xmu[group]);
}

template <typename T>
__global__ void bn_param_grads_kernel(const double* __restrict__ sum_dy, const double* __restrict__ sum_dy_xmu,
                                      const double* __restrict__ invstd, int64_t groups, T* __restrict__ dw,
                                      T* __restrict__ db) {
  for (int64_t group = global_thread(); group < groups; group += grid_threads()) {
    if (dw) dw[group] = static_cast<T>(sum_dy_xmu[group] * invstd[group]);
    if (db) db[group] = static_cast<T>(sum_dy[group]);
  }
}

__device__ __forceinline__ int64_t group_of_row(const Geo& g, int64_t r) {
  return (r / (g.N * g.C)) * g.C + r % g.C;
}

// The elementwise passes (apply forward, dx backward): Op::coef(group) computes a row's
// constants once, Op::load(i) reads what element i needs and Op::store(coef, loaded, i) writes it.
template <typename T>
struct ApplyOp {
  const T* __restrict__ x;
  const double* __restrict__ mean;
  const double* __restrict__ invstd;
  const T* __restrict__ weight;
  const T* __restrict__ bias;
  T* __restrict__ y;
  using Coef = cpu::BnAffine;
  __device__ Coef coef(int64_t group) const { return cpu::bn_affine(group, mean, invstd, weight, bias); }
  using Loaded = T;
  __device__ T load(int64_t i) const { return x[i]; }
  __device__ void store(const Coef& k, T v, int64_t i) const { y[i] = cpu::bn_apply(v, k); }
};

template <typename T>
struct InputGradOp {
  const T* __restrict__ dy;
  const T* __restrict__ x;
  const double* __restrict__ mean;
  const double* __restrict__ invstd;
  const T* __restrict__ weight;
  const double* __restrict__ sum_dy;
  const double* __restrict__ sum_dy_xmu;
  bool batch_stats;
  double inv_n;
  T* __restrict__ dx;
  using Coef = cpu::BnInputGrad;
  __device__ Coef coef(int64_t group) const {
    return cpu::bn_input_grad(group, mean, invstd, weight, sum_dy, sum_dy_xmu, batch_stats, inv_n);
  }
  struct Loaded {
    T dy, x;
  };
  __device__ Loaded load(int64_t i) const { return {dy[i], batch_stats ? x[i] : T(0)}; }
  __device__ void store(const Coef& c, Loaded v, int64_t i) const { dx[i] = cpu::bn_input_grad_of(v.dy, v.x, c); }
};

// Large planes (S >= kRowMin): blocks walk rows (blockIdx.y) and the row's elements, the row's
// constants computed once per block and row. Small planes: one thread per element, the row
// found by 32-bit division where the tensor fits.
constexpr int64_t kRowMin = 1024;

constexpr int kRowUnroll = 4;  // elements per thread and step of a row (blockDim apart: coalesced)

template <typename Op>
__global__ void bn_rows_kernel(Geo g, int64_t rows, Op op) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * kBlockThreads * kRowUnroll;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const auto k = op.coef(group_of_row(g, r));
    const int64_t base = r * g.S;
    for (int64_t s0 = static_cast<int64_t>(blockIdx.x) * kBlockThreads * kRowUnroll + threadIdx.x; s0 < g.S;
         s0 += step) {
      if (s0 + (kRowUnroll - 1) * kBlockThreads < g.S) {
        typename Op::Loaded v[kRowUnroll];
#pragma unroll
        for (int u = 0; u < kRowUnroll; ++u) v[u] = op.load(base + s0 + u * kBlockThreads);
#pragma unroll
        for (int u = 0; u < kRowUnroll; ++u) op.store(k, v[u], base + s0 + u * kBlockThreads);
      } else {
        for (int64_t s = s0; s < g.S; s += kBlockThreads) op.store(k, op.load(base + s), base + s);
      }
    }
  }
}

template <typename I, typename Op>
__global__ void bn_flat_kernel(Geo g, I n, Op op) {
  const I S = static_cast<I>(g.S), NC = static_cast<I>(g.N * g.C), C = static_cast<I>(g.C);
  for (I i = static_cast<I>(global_thread()); i < n; i += static_cast<I>(grid_threads())) {
    I r = i / S;
    const int64_t o = static_cast<int64_t>(i);
    op.store(op.coef(static_cast<int64_t>((r / NC) * C + r % C)), op.load(o), o);
  }
}

template <typename Op>
void launch_elementwise(const Geo& g, int64_t rows, const Op& op, cudaStream_t s) {
  const int64_t n = rows * g.S;
  if (g.S >= kRowMin) {
    const int64_t per_block = int64_t{kBlockThreads} * kRowUnroll;
    unsigned x = static_cast<unsigned>(std::min<int64_t>((g.S + per_block - 1) / per_block, 64));
    unsigned y = static_cast<unsigned>(std::clamp<int64_t>(rows, 1, 65535));
    bn_rows_kernel<Op><<<dim3(x, y), kBlockThreads, 0, s>>>(g, rows, op);
  } else if (n < (int64_t{1} << 31)) {
    bn_flat_kernel<uint32_t, Op><<<grid_for(n), kBlockThreads, 0, s>>>(g, static_cast<uint32_t>(n), op);
  } else {
    bn_flat_kernel<uint64_t, Op><<<grid_for(n), kBlockThreads, 0, s>>>(g, static_cast<uint64_t>(n), op);
  }
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
      y[i] = cpu::dropout_value(x[i], block.v[k], p, scale);
    }
  }
}

}  // namespace

template <typename T>
void batch_norm_stats(const T* x, const BatchNormGeometry& geo, double* mean, double* var, int device) {
  const int64_t groups = geo.groups();
  if (groups == 0) return;
  cudaStream_t s = stream(device);
  const Geo g = geo_of(geo);
  PartialSums parts(groups, geo.count(), device);
  launch_partials(g, groups, parts.view(), StatTerms<T>{x}, s);
  MMF_CUDA_CHECK_LAUNCH("batch_norm_stats", groups, " groups (", geo.modalities, " modalities x ", geo.channels,
                        " channels) of ", geo.count(), " elements in ", parts.chunks(), " chunks on cuda:", device);
  bn_stats_finish_kernel<T><<<grid_for(groups), kBlockThreads, 0, s>>>(x, g, groups, parts.view(), mean, var);
  MMF_CUDA_CHECK_LAUNCH("batch_norm_stats_finish", groups, " groups on cuda:", device);
}

template <typename T>
void batch_norm_prepare(T* running_mean, T* running_var, int64_t groups, bool batch_stats, int64_t update_count,
                        double momentum, double eps, double* mean, double* var, double* invstd, int device) {
  if (groups == 0) return;
  bn_prepare_kernel<T><<<grid_for(groups), kBlockThreads, 0, stream(device)>>>(
      running_mean, running_var, groups, batch_stats, update_count, momentum, eps, mean, var, invstd);
  MMF_CUDA_CHECK_LAUNCH("batch_norm_prepare", groups, " groups on cuda:", device);
}

template <typename T>
void batch_norm_apply(const T* x, const BatchNormGeometry& geo, const double* mean, const double* invstd,
                      const T* weight, const T* bias, T* y, int device) {
  const int64_t groups = geo.groups();
  if (groups == 0 || geo.count() == 0) return;
  launch_elementwise(geo_of(geo), groups * geo.batch_per_modality, ApplyOp<T>{x, mean, invstd, weight, bias, y},
                     stream(device));
  MMF_CUDA_CHECK_LAUNCH("batch_norm_apply", groups * geo.count(), " elements in ", groups, " groups on cuda:", device);
}

template <typename T>
void batch_norm_backward_reduce(const T* dy, const T* x, const BatchNormGeometry& geo, const double* mean,
                                double* sum_dy, double* sum_dy_xmu, int device) {
  const int64_t groups = geo.groups();
  if (groups == 0) return;
  cudaStream_t s = stream(device);
  PartialSums parts(groups, geo.count(), device);
  launch_partials(geo_of(geo), groups, parts.view(), GradTerms<T>{dy, x, mean}, s);
  MMF_CUDA_CHECK_LAUNCH("batch_norm_backward_reduce", groups, " groups of ", geo.count(), " elements in ",
                        parts.chunks(), " chunks on cuda:", device);
  bn_grad_finish_kernel<<<grid_for(groups), kBlockThreads, 0, s>>>(groups, parts.view(), sum_dy, sum_dy_xmu);
  MMF_CUDA_CHECK_LAUNCH("batch_norm_backward_finish", groups, " groups on cuda:", device);
}

template <typename T>
void batch_norm_param_grads(const double* sum_dy, const double* sum_dy_xmu, const double* invstd, int64_t groups,
                            T* dw, T* db, int device) {
  if (groups == 0 || (!dw && !db)) return;
  bn_param_grads_kernel<T><<<grid_for(groups), kBlockThreads, 0, stream(device)>>>(sum_dy, sum_dy_xmu, invstd,
                                                                                    groups, dw, db);
  MMF_CUDA_CHECK_LAUNCH("batch_norm_param_grads", groups, " groups on cuda:", device);
}

template <typename T>
void batch_norm_backward_input(const T* dy, const T* x, const BatchNormGeometry& geo, const double* mean,
                               const double* invstd, const T* weight, const double* sum_dy,
                               const double* sum_dy_xmu, bool batch_stats, T* dx, int device) {
  const int64_t groups = geo.groups();
  if (groups == 0 || geo.count() == 0) return;
  double inv_n = 1.0 / static_cast<double>(std::max<int64_t>(geo.count(), 1));
  launch_elementwise(geo_of(geo), groups * geo.batch_per_modality,
                     InputGradOp<T>{dy, x, mean, invstd, weight, sum_dy, sum_dy_xmu, batch_stats, inv_n, dx},
                     stream(device));
  MMF_CUDA_CHECK_LAUNCH("batch_norm_backward_input", groups * geo.count(), " elements in ", groups,
                        " groups on cuda:", device);
}

template <typename T>
void dropout_apply(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset, int device) {
  if (n <= 0) return;
  const double scale = cpu::dropout_scale(p);
  int64_t counters = static_cast<int64_t>(((offset + static_cast<uint64_t>(n) - 1) >> 2) - (offset >> 2) + 1);
  dropout_kernel<T><<<grid_for(counters), kBlockThreads, 0, stream(device)>>>(x, y, n, p, scale, seed, offset,
                                                                              counters);
  MMF_CUDA_CHECK_LAUNCH("dropout", n, " elements on cuda:", device);
}

#define MMF_NORM(T)                                                                                           \
  template void batch_norm_stats<T>(const T*, const BatchNormGeometry&, double*, double*, int);               \
  template void batch_norm_prepare<T>(T*, T*, int64_t, bool, int64_t, double, double, double*, double*,       \
                                      double*, int);                                                         \
  template void batch_norm_apply<T>(const T*, const BatchNormGeometry&, const double*, const double*,         \
                                    const T*, const T*, T*, int);                                            \
  template void batch_norm_backward_reduce<T>(const T*, const T*, const BatchNormGeometry&, const double*,    \
                                              double*, double*, int);                                        \
  template void batch_norm_param_grads<T>(const double*, const double*, const double*, int64_t, T*, T*, int); \
  template void batch_norm_backward_input<T>(const T*, const T*, const BatchNormGeometry&, const double*,     \
                                             const double*, const T*, const double*, const double*, bool, T*, \
                                             int);                                                           \
  template void dropout_apply<T>(const T*, T*, int64_t, double, uint64_t, uint64_t, int);
MMF_NORM(float)
MMF_NORM(double)
#undef MMF_NORM

}  // namespace mmfuse::cuda
