// The CUDA kernels core/ calls: raw pointers, sizes and the device index (the kernels run on
// that device's compute stream, cuda/context.h). No CUDA headers here, and nothing of Tensor:
// each function mirrors its CPU twin in core/cpu/ and takes the same functors
// (base/elementwise_functors.h). Included by core/ only where MMFUSE_WITH_CUDA is defined.
//
// Templates are explicitly instantiated in the .cu files for T = float, double and every
// functor of base/elementwise_functors.h; a new functor is one line in the list at the
// end of cuda/elementwise.cu.
#pragma once
#include <cstdint>
#include <vector>

#include "base/dtype.h"
#include "base/elementwise_functors.h"

namespace mmfuse::cuda {

// Most dims a broadcast or reduction may have after merging adjacent dims that need no
// index arithmetic (a contiguous run merges into one dim).
constexpr int kMaxKernelDims = 12;

// ---- elementwise (cuda/elementwise.cu) ------------------------------------------------------
// y[i] = op.forward(x[i])
template <typename T, typename Op>
void unary_forward(const T* x, T* y, int64_t n, Op op, int device);
// dx[i] = op.backward(x[i], y[i], g[i])
template <typename T, typename Op>
void unary_backward(const T* x, const T* y, const T* g, T* dx, int64_t n, Op op, int device);
// out = op(a, b) with broadcasting: the arguments of cpu::binary_broadcast (strides per
// output dim, 0 where an operand is broadcast).
template <typename T, typename Op>
void binary_broadcast(const T* a, const T* b, T* out, const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& a_strides, const std::vector<int64_t>& b_strides,
                      Op op, int device);

// Sets n elements of dtype `dtype` to value (converted as static_cast).
void fill(void* dst, DType dtype, int64_t n, double value, int device);
// dst[i] = static_cast<dst type>(src[i]) for n elements, both on `device`.
void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n, int device);

// ---- reductions (cuda/reduce.cu) ------------------------------------------------------------
// x is contiguous of `shape`; reduce_mask[d] says whether dim d is reduced; out holds the kept
// dims in order (any keepdim reshaping is the caller's). Deterministic: the order in which
// elements are combined depends on the shape and mask only, never on timing (no atomics).
// out[o] = scale * sum (accumulated in double, as the CPU path).
template <typename T>
void reduce_sum(const T* x, T* out, const std::vector<int64_t>& shape,
                const std::vector<bool>& reduce_mask, double scale, int device);
// out[o] = max; argmax[o] = the input offset of the first maximal element (lowest offset, as
// the CPU path). The reduction must not be empty.
template <typename T>
void reduce_max(const T* x, T* out, int64_t* argmax, const std::vector<int64_t>& shape,
                const std::vector<bool>& reduce_mask, int device);
// dx[argmax[o]] = g[o] for every output o; dx must be zeroed by the caller. The argmax
// offsets of distinct outputs are distinct, so this is a plain scatter.
template <typename T>
void max_backward(const T* g, const int64_t* argmax, T* dx, int64_t n_out, int device);

}  // namespace mmfuse::cuda
