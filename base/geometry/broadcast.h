// The dims of a broadcasting binary op after merging (out = op(a, b), each operand read through
// element strides per output dim, 0 where it is broadcast). Shared by the CPU loop
// (core/cpu/elementwise.h) and its CUDA twin: plain structs and index arithmetic, nothing of
// Tensor, OpenMP or CUDA.
#pragma once
#include <cstdint>
#include <vector>

namespace mmfuse::cpu {

struct BroadcastDim {
  int64_t size, a_stride, b_stride;
};

// Drops size-1 dims and merges neighbours whose strides continue each other in both operands,
// outermost first: equal shapes become one dim of strides (1, 1), a bias [1, C, 1, 1] on
// [N, C, H, W] becomes [N, C, H*W] with b's strides (0, 1, 0). Empty for a single element.
inline std::vector<BroadcastDim> merge_broadcast_dims(const std::vector<int64_t>& shape,
                                                      const std::vector<int64_t>& a_strides,
                                                      const std::vector<int64_t>& b_strides) {
  std::vector<BroadcastDim> inner_first;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (!inner_first.empty()) {
      BroadcastDim& in = inner_first.back();
      if (a_strides[d] == in.a_stride * in.size && b_strides[d] == in.b_stride * in.size) {
        in.size *= shape[d];
        continue;
      }
    }
    inner_first.push_back({shape[d], a_strides[d], b_strides[d]});
  }
  return {inner_first.rbegin(), inner_first.rend()};
}

}  // namespace mmfuse::cpu
