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

#include "base/geometry/shape.h"
#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

constexpr int64_t kCopyGrain = 65536;  // elements a thread copies at least

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
