// The CPU kernel of the shape family. Every op of it (concat, split, slice, pad, crop and their
// backward passes) copies an N-d box of elements from one contiguous tensor into another, so
// one kernel serves them all. Dims over which the box is dense in both tensors are merged
// first: concat along dim d then becomes `outer` rows of one memcpy each (the outer x block
// fast path), and a crop of whole rows becomes a single memcpy.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

constexpr int64_t kCopyGrain = 65536;  // elements a thread copies at least

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

template <typename T>
void copy_box(const T* src, T* dst, const BoxCopy& box) {
  int64_t src_base, dst_base;
  std::vector<BoxDim> dims;
  if (!plan_box(box, src_base, dst_base, dims)) return;
  src += src_base;
  dst += dst_base;
  if (dims.empty()) {  // a single element
    dst[0] = src[0];
    return;
  }
  BoxDim inner = dims.back();
  dims.pop_back();
  int64_t rows = 1;
  for (const BoxDim& d : dims) rows *= d.extent;
  bool dense = inner.src_stride == 1 && inner.dst_stride == 1;
  parallel_for(rows, std::max<int64_t>(1, kCopyGrain / inner.extent), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t rem = r, so = 0, dof = 0;
      for (int64_t d = static_cast<int64_t>(dims.size()) - 1; d >= 0; --d) {
        int64_t i = rem % dims[d].extent;
        rem /= dims[d].extent;
        so += i * dims[d].src_stride;
        dof += i * dims[d].dst_stride;
      }
      const T* s = src + so;
      T* o = dst + dof;
      if (dense) {
        std::memcpy(o, s, static_cast<size_t>(inner.extent) * sizeof(T));
      } else {
        for (int64_t i = 0; i < inner.extent; ++i) o[i * inner.dst_stride] = s[i * inner.src_stride];
      }
    }
  });
}

}  // namespace mmfuse::cpu
