// The box copy that every op of the shape family reduces to, and its plan.
// Shared by the CPU kernels (core/cpu/shape.h) and their CUDA twins, which take the same arguments:
// plain structs and index arithmetic, nothing of Tensor, OpenMP or CUDA. The namespace stays
// mmfuse::cpu, where the CPU kernels have always defined these names.
#pragma once
#include <cstdint>
#include <vector>

namespace mmfuse::cpu {

// The box has extent[d] elements along dim d. Its element i along d is read at index
// src_start[d] + i * src_step[d] of the source (shape src_shape) and written at index
// dst_start[d] + i * dst_step[d] of the destination (shape dst_shape). All vectors have one
// entry per dim; steps are >= 1. The caller guarantees the box lies inside both tensors.
struct BoxCopy {
  std::vector<int64_t> extent;
  std::vector<int64_t> src_shape, src_start, src_step;
  std::vector<int64_t> dst_shape, dst_start, dst_step;
};

// A box dim after merging: its extent and the element strides in source and destination.
struct BoxDim {
  int64_t extent, src_stride, dst_stride;
};

// Turns a BoxCopy into base offsets and merged dims (outermost first), dropping dims of
// extent 1. Returns false when the box is empty.
inline bool plan_box(const BoxCopy& box, int64_t& src_base, int64_t& dst_base, std::vector<BoxDim>& dims) {
  int64_t nd = static_cast<int64_t>(box.extent.size());
  src_base = dst_base = 0;
  dims.clear();
  int64_t src_stride = 1, dst_stride = 1;
  std::vector<BoxDim> reversed;  // innermost first while building
  for (int64_t d = nd - 1; d >= 0; --d) {
    if (box.extent[d] == 0) return false;
    src_base += box.src_start[d] * src_stride;
    dst_base += box.dst_start[d] * dst_stride;
    BoxDim bd{box.extent[d], box.src_step[d] * src_stride, box.dst_step[d] * dst_stride};
    src_stride *= box.src_shape[d];
    dst_stride *= box.dst_shape[d];
    if (bd.extent == 1) continue;
    if (!reversed.empty()) {
      BoxDim& inner = reversed.back();
      if (bd.src_stride == inner.extent * inner.src_stride && bd.dst_stride == inner.extent * inner.dst_stride) {
        inner.extent *= bd.extent;
        continue;
      }
    }
    reversed.push_back(bd);
  }
  dims.assign(reversed.rbegin(), reversed.rend());
  return true;
}

}  // namespace mmfuse::cpu
