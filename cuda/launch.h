// Launch helpers shared by the .cu files: block size, grid size for grid-stride loops, and
// the 16-byte vector type of the aligned fast path. For .cu files only.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace mmfuse::cuda {

constexpr int kBlockThreads = 256;
// Grid-stride loops cover any size; beyond this many blocks each thread takes more items
// (a few waves of 132 SMs x 8 blocks on an H100 is plenty to saturate memory).
constexpr int64_t kMaxBlocks = 65536;

inline unsigned grid_for(int64_t items, int threads_per_block = kBlockThreads) {
  int64_t blocks = (items + threads_per_block - 1) / threads_per_block;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

// W elements of T loaded or stored as one 16-byte access (W = 1: a plain scalar).
template <typename T, int W>
struct alignas(sizeof(T) * W) Vec {
  T v[W];
};

template <typename T>
constexpr int kVecWidth = 16 / sizeof(T) >= 1 ? static_cast<int>(16 / sizeof(T)) : 1;

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

}  // namespace mmfuse::cuda
