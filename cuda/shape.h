// The shape family on CUDA: the twin of core/cpu/shape.h. concat, split, slice, pad, crop and
// their backward passes all copy an N-d box of elements between two contiguous tensors, so,
// as on the CPU, one strided block-copy kernel serves them all. No CUDA headers here.
#pragma once
#include <cstdint>

#include "base/geometry/shape.h"

namespace mmfuse::cuda {

// Copies the box (cpu::BoxCopy: extent, starts and steps in both tensors) from src to dst,
// both on `device`. The box is planned on the host by cpu::plan_box (dims dense in both
// tensors merged, extent-1 dims dropped); then one thread per element, or per 16 bytes where
// the innermost merged dim is dense in both tensors and every offset is 16-byte aligned.
// Instantiated for float, double, int32_t, int64_t and uint8_t (the kernel only moves bytes).
template <typename T>
void copy_box(const T* src, T* dst, const cpu::BoxCopy& box, int device);

}  // namespace mmfuse::cuda
