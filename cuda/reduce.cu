// Reductions on CUDA: sum/mean (accumulated in double, as the CPU path) and max with the
// offsets of the maxima for backward. Deterministic by construction: the input is cut into
// segments (output o, chunk c) whose layout depends on the shape and mask only; each segment
// is folded by a group of 1, 32 or 256 threads in a fixed order (strided per thread, then
// cuda/block_reduce.cuh's fixed tree over the warp and the block's warps); partial results of
// several chunks are folded in chunk order by a second kernel. No atomics anywhere.
#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <limits>
#include <vector>

#include "base/error.h"
#include "cuda/block_reduce.cuh"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/kernels.h"
#include "cuda/launch.h"
#include "cuda/scratch.h"

namespace mmfuse::cuda {

namespace {

// The input seen as kept dims x reduced dims (after merging neighbours with the same role;
// the input is contiguous, so such neighbours always merge). Outputs are numbered row-major
// over the kept dims, which is the layout of the result.
struct ReduceGeometry {
  int n_kept = 0, n_reduced = 0;
  int64_t kept_size[kMaxKernelDims], kept_stride[kMaxKernelDims];
  int64_t red_size[kMaxKernelDims], red_stride[kMaxKernelDims];
  int64_t n_out = 1, n_red = 1;
  bool inner_kept = false;  // the innermost (stride-1) dim is kept
};

ReduceGeometry make_geometry(const std::vector<int64_t>& shape, const std::vector<bool>& mask) {
  struct Dim { int64_t size, stride; bool reduced; };
  std::vector<Dim> dims;  // outermost first, merged
  int64_t stride = 1;
  std::vector<Dim> rev;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] != 1) {
      if (!rev.empty() && rev.back().reduced == mask[d]) rev.back().size *= shape[d];
      else rev.push_back({shape[d], stride, static_cast<bool>(mask[d])});
    }
    stride *= shape[d];
  }
  dims.assign(rev.rbegin(), rev.rend());
  ReduceGeometry g;
  for (const Dim& d : dims) {
    int& n = d.reduced ? g.n_reduced : g.n_kept;
    MMF_CHECK(n < kMaxKernelDims, OpError, "reduce: more than ", kMaxKernelDims,
              " alternating kept/reduced dims for a CUDA kernel");
    (d.reduced ? g.red_size : g.kept_size)[n] = d.size;
    (d.reduced ? g.red_stride : g.kept_stride)[n] = d.stride;
    ++n;
    (d.reduced ? g.n_red : g.n_out) *= d.size;
  }
  // A zero-size dim: nothing to read (n_red == 0) or nothing to write (n_out == 0).
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] == 0) (mask[d] ? g.n_red : g.n_out) = 0;
  g.inner_kept = !dims.empty() && !dims.back().reduced;
  return g;
}

__device__ __forceinline__ int64_t offset_of(int64_t index, int n, const int64_t* size, const int64_t* stride) {
  if (n == 1) return index * stride[0];
  int64_t off = 0;
  for (int d = n - 1; d >= 0; --d) {
    off += (index % size[d]) * stride[d];
    index /= size[d];
  }
  return off;
}

// ---- the folds ---------------------------------------------------------------------------

template <typename T>
struct SumFold : SumOp<double> {  // combine and shuffle_down: block_reduce.cuh's sum
  using Acc = double;
  double scale;
  __device__ Acc identity() const { return 0.0; }
  __device__ Acc fold(Acc acc, T v, int64_t) const { return acc + static_cast<double>(v); }
  __device__ void finish(Acc acc, int64_t o, T* out, int64_t*) const { out[o] = static_cast<T>(acc * scale); }
};

// The first maximal element: larger value wins, ties go to the lower input offset, so the
// result equals the CPU's left-to-right scan whatever the combination order. offset < 0 marks
// an empty accumulator (a thread that had no element).
template <typename T>
struct MaxAcc {
  T value;
  int64_t offset;
};
template <typename T>
struct MaxFold {
  using Acc = MaxAcc<T>;
  __device__ Acc identity() const { return {T(0), -1}; }
  __device__ Acc fold(Acc acc, T v, int64_t off) const { return combine(acc, Acc{v, off}); }
  __device__ Acc combine(Acc a, Acc b) const {
    if (a.offset < 0) return b;
    if (b.offset < 0) return a;
    if (b.value > a.value || (b.value == a.value && b.offset < a.offset)) return b;
    return a;
  }
  __device__ Acc shuffle_down(Acc a, int delta) const {
    return {__shfl_down_sync(kFullWarp, a.value, delta),
            static_cast<int64_t>(__shfl_down_sync(kFullWarp, static_cast<long long>(a.offset), delta))};
  }
  __device__ void finish(Acc acc, int64_t o, T* out, int64_t* argmax) const {
    out[o] = acc.value;
    argmax[o] = acc.offset;
  }
};

// Segment s = c * n_out + o (outputs fastest: with one thread per segment and the innermost
// dim kept, neighbouring threads read neighbouring addresses). Each group of TPO threads
// folds the elements r in [c * chunk, min(n_red, (c + 1) * chunk)) of output o, thread t
// taking r = start + t, start + t + TPO, ... With one chunk the result is written directly;
// otherwise the segment's accumulator goes to partial[s].
template <typename T, typename F, int TPO>
__global__ void __launch_bounds__(kBlockThreads)
reduce_kernel(const T* __restrict__ x, ReduceGeometry g, int64_t chunk, int64_t n_chunks, F f,
              typename F::Acc* __restrict__ partial, T* __restrict__ out, int64_t* __restrict__ argmax) {
  using Acc = typename F::Acc;
  constexpr int kGroups = kBlockThreads / TPO;
  const int lane = threadIdx.x % TPO;
  const int64_t n_segments = g.n_out * n_chunks;
  // Every thread of a group runs the same iterations (needed for the block-wide TPO).
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * kGroups + threadIdx.x / TPO; s < n_segments;
       s += static_cast<int64_t>(gridDim.x) * kGroups) {
    const int64_t o = s % g.n_out, c = s / g.n_out;
    const int64_t base = offset_of(o, g.n_kept, g.kept_size, g.kept_stride);
    const int64_t begin = c * chunk, end = min(g.n_red, begin + chunk);
    Acc acc = f.identity();
    for (int64_t r = begin + lane; r < end; r += TPO) {
      int64_t off = base + offset_of(r, g.n_reduced, g.red_size, g.red_stride);
      acc = f.fold(acc, x[off], off);
    }
    acc = group_reduce<TPO>(acc, f);
    if (lane == 0) {
      if (n_chunks == 1) f.finish(acc, o, out, argmax);
      else partial[s] = acc;
    }
  }
}

// Folds the n_chunks partial accumulators of each output in chunk order.
template <typename T, typename F>
__global__ void reduce_partials_kernel(const typename F::Acc* __restrict__ partial, int64_t n_out,
                                       int64_t n_chunks, F f, T* __restrict__ out, int64_t* __restrict__ argmax) {
  for (int64_t o = global_thread(); o < n_out; o += grid_threads()) {
    typename F::Acc acc = partial[o];
    for (int64_t c = 1; c < n_chunks; ++c) acc = f.combine(acc, partial[c * n_out + o]);
    f.finish(acc, o, out, argmax);
  }
}

template <typename T, typename F, int TPO>
void launch_reduce(const char* name, const T* x, const ReduceGeometry& g, F f, T* out, int64_t* argmax,
                   cudaStream_t s, int device) {
  // Enough segments to fill the GPU (a fixed target, not the device's SM count: the cut, and
  // so the rounding, must not depend on which GPU runs it), chunks of at least 8 elements per
  // thread.
  constexpr int64_t kTargetThreads = int64_t{1} << 18;
  constexpr int64_t kMinChunk = TPO * 8 > 64 ? TPO * 8 : 64;
  int64_t n_chunks = 1;
  if (g.n_out * TPO < kTargetThreads) {
    int64_t wanted = (kTargetThreads / TPO + g.n_out - 1) / g.n_out;
    int64_t most = (g.n_red + kMinChunk - 1) / kMinChunk;
    n_chunks = std::clamp<int64_t>(std::min(wanted, most), 1, 1024);
  }
  int64_t chunk = (g.n_red + n_chunks - 1) / n_chunks;
  if (chunk == 0) chunk = 1;
  n_chunks = std::max<int64_t>(1, (g.n_red + chunk - 1) / chunk);
  constexpr int kGroups = kBlockThreads / TPO;
  unsigned blocks = grid_for(g.n_out * n_chunks, kGroups);
  Scratch partial(n_chunks > 1 ? sizeof(typename F::Acc) * g.n_out * n_chunks : 0, device);
  auto* partial_ptr = partial.get<typename F::Acc>();
  reduce_kernel<T, F, TPO><<<blocks, kBlockThreads, 0, s>>>(x, g, chunk, n_chunks, f, partial_ptr, out, argmax);
  MMF_CUDA_CHECK_LAUNCH(name, g.n_out, " outputs of ", g.n_red, " elements, ", n_chunks, " chunks, ",
                        TPO, " threads each, on cuda:", device);
  if (n_chunks > 1) {
    reduce_partials_kernel<T, F><<<grid_for(g.n_out), kBlockThreads, 0, s>>>(partial_ptr, g.n_out, n_chunks, f, out, argmax);
    MMF_CUDA_CHECK_LAUNCH(name, " (partials) ", g.n_out, " outputs of ", n_chunks, " chunks on cuda:", device);
  }
}

template <typename T, typename F>
void run_reduce(const char* name, const T* x, const std::vector<int64_t>& shape,
                const std::vector<bool>& mask, F f, T* out, int64_t* argmax, int device) {
  ReduceGeometry g = make_geometry(shape, mask);
  if (g.n_out == 0) return;
  cudaStream_t s = stream(device);
  // Innermost dim kept: one thread per output, neighbours reading neighbours. Otherwise a
  // warp per output for short reductions, a block for long ones.
  if (g.inner_kept) launch_reduce<T, F, 1>(name, x, g, f, out, argmax, s, device);
  else if (g.n_red <= 1024) launch_reduce<T, F, 32>(name, x, g, f, out, argmax, s, device);
  else launch_reduce<T, F, kBlockThreads>(name, x, g, f, out, argmax, s, device);
}

template <typename T>
__global__ void max_backward_kernel(const T* __restrict__ g, const int64_t* __restrict__ argmax,
                                    T* __restrict__ dx, int64_t n_out) {
  for (int64_t o = global_thread(); o < n_out; o += grid_threads()) dx[argmax[o]] = g[o];
}

}  // namespace

template <typename T>
void reduce_sum(const T* x, T* out, const std::vector<int64_t>& shape, const std::vector<bool>& mask,
                double scale, int device) {
  SumFold<T> fold;
  fold.scale = scale;
  run_reduce<T>("reduce_sum", x, shape, mask, fold, out, nullptr, device);
}

template <typename T>
void reduce_max(const T* x, T* out, int64_t* argmax, const std::vector<int64_t>& shape,
                const std::vector<bool>& mask, int device) {
  ReduceGeometry g = make_geometry(shape, mask);
  MMF_CHECK(g.n_red > 0 || g.n_out == 0, OpError, "max: empty reduction");
  run_reduce<T>("reduce_max", x, shape, mask, MaxFold<T>{}, out, argmax, device);
}

template <typename T>
void max_backward(const T* g, const int64_t* argmax, T* dx, int64_t n_out, int device) {
  if (n_out <= 0) return;
  cudaStream_t s = stream(device);
  max_backward_kernel<T><<<grid_for(n_out), kBlockThreads, 0, s>>>(g, argmax, dx, n_out);
  MMF_CUDA_CHECK_LAUNCH("max_backward", n_out, " outputs on cuda:", device);
}

#define MMF_REDUCE(T)                                                                              \
  template void reduce_sum<T>(const T*, T*, const std::vector<int64_t>&, const std::vector<bool>&, \
                              double, int);                                                        \
  template void reduce_max<T>(const T*, T*, int64_t*, const std::vector<int64_t>&,                 \
                              const std::vector<bool>&, int);                                      \
  template void max_backward<T>(const T*, const int64_t*, T*, int64_t, int);
MMF_REDUCE(float)
MMF_REDUCE(double)
#undef MMF_REDUCE

}  // namespace mmfuse::cuda
