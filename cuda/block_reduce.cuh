// The one warp/block reduction of the .cu files: a fixed tree, so that a reduction's result
// depends on the launch shape only, never on timing (no atomics). Every block reduction in
// cuda/ (reduce.cu's folds, the fusion row dots, batch norm's partial sums, the optimizer's
// sum of squares, cross entropy's target check) goes through it. For .cu files only.
//
// An Op combines two accumulators and moves one down a warp:
//   Acc combine(Acc a, Acc b) const;  Acc shuffle_down(Acc a, int delta) const;
// SumOp and PairSumOp below cover sums; reduce.cu's MaxFold brings its own.
#pragma once
#include <cuda_runtime.h>

#include "cuda/launch.h"

namespace mmfuse::cuda {

constexpr unsigned kFullWarp = 0xffffffffu;

template <typename T>
struct SumOp {
  __device__ T combine(T a, T b) const { return a + b; }
  __device__ T shuffle_down(T a, int delta) const { return __shfl_down_sync(kFullWarp, a, delta); }
};

// Two sums carried together (batch norm's two terms).
struct DoublePair {
  double a, b;
};
struct PairSumOp {
  __device__ DoublePair combine(DoublePair x, DoublePair y) const { return {x.a + y.a, x.b + y.b}; }
  __device__ DoublePair shuffle_down(DoublePair x, int delta) const {
    return {__shfl_down_sync(kFullWarp, x.a, delta), __shfl_down_sync(kFullWarp, x.b, delta)};
  }
};

// Folds acc over the 32 lanes of a warp: shuffles at deltas 16, 8, 4, 2, 1. The result is
// valid in lane 0. Every lane of the warp must call it.
template <typename Acc, typename Op>
__device__ __forceinline__ Acc warp_reduce(Acc acc, const Op& op) {
#pragma unroll
  for (int delta = 16; delta > 0; delta /= 2) acc = op.combine(acc, op.shuffle_down(acc, delta));
  return acc;
}

// Folds acc over a group of TPO consecutive threads of a block of kBlockThreads: TPO = 1
// (nothing to do), 32 (a warp) or a multiple of 32 that divides the block (each warp by
// warp_reduce, then the group's first thread folds its warps' results in warp order). The
// result is valid in the group's first thread (threadIdx.x % TPO == 0). With TPO > 32 it
// synchronises the block: every thread of the block must call it, the same number of times.
template <int TPO, typename Acc, typename Op>
__device__ __forceinline__ Acc group_reduce(Acc acc, const Op& op) {
  static_assert(TPO == 1 || (TPO % 32 == 0 && kBlockThreads % TPO == 0), "group_reduce: TPO is 1, 32 or 32k | block");
  if constexpr (TPO >= 32) acc = warp_reduce(acc, op);
  if constexpr (TPO > 32) {
    __shared__ Acc warp_acc[kBlockThreads / 32];
    const int warp = static_cast<int>(threadIdx.x / 32);
    if (threadIdx.x % 32 == 0) warp_acc[warp] = acc;
    __syncthreads();
    if (threadIdx.x % TPO == 0)
      for (int w = 1; w < TPO / 32; ++w) acc = op.combine(acc, warp_acc[warp + w]);
    __syncthreads();  // warp_acc is rewritten by the next call
  }
  return acc;
}

// The whole block (kBlockThreads threads) as one group.
template <typename Acc, typename Op>
__device__ __forceinline__ Acc block_reduce(Acc acc, const Op& op) {
  return group_reduce<kBlockThreads>(acc, op);
}

}  // namespace mmfuse::cuda
