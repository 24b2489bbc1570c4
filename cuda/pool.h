// Pooling and resizing on CUDA: the twins of core/cpu/pool.h and core/cpu/resize.h (same
// geometry structs, raw pointers, plus the device). Every backward is a gather (one thread per
// input element summing the outputs that read it, in a fixed order): no atomics, so results
// are deterministic. No CUDA headers here.
#pragma once
#include <cstdint>

#include "base/geometry/pool.h"
#include "base/geometry/resize.h"

namespace mmfuse::cuda {

// argmax as in cpu::max_pool2d_forward (index h * in_w + w within the plane).
template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* argmax, const cpu::Pool2dGeometry& g, int device);
// Overwrites gx (no zeroing needed).
template <typename T>
void max_pool2d_backward(const T* gy, const int64_t* argmax, T* gx, const cpu::Pool2dGeometry& g, int device);
template <typename T>
void avg_pool2d_forward(const T* x, T* y, const cpu::Pool2dGeometry& g, bool count_include_pad, int device);
// Overwrites gx.
template <typename T>
void avg_pool2d_backward(const T* gy, T* gx, const cpu::Pool2dGeometry& g, bool count_include_pad, int device);
// Mean of each of `rows` runs of `inner` elements (the deterministic reduction of
// cuda/reduce.cu, accumulated in double), and its backward gx[r, i] = gy[r] / inner.
template <typename T>
void row_mean_forward(const T* x, T* y, int64_t rows, int64_t inner, int device);
template <typename T>
void row_mean_backward(const T* gy, T* gx, int64_t rows, int64_t inner, int device);

// The resize kernels take the CPU's source indices and weights (computed on the host by the
// same functions), so both backends sample the same pixels with the same weights. Backward
// overwrites gx.
template <typename T>
void upsample_bilinear_forward(const T* x, T* y, const cpu::ResizeGeometry& g, bool align_corners, double scale_h,
                               double scale_w, int device);
template <typename T>
void upsample_bilinear_backward(const T* gy, T* gx, const cpu::ResizeGeometry& g, bool align_corners,
                                double scale_h, double scale_w, int device);
template <typename T>
void upsample_nearest_forward(const T* x, T* y, const cpu::ResizeGeometry& g, int device);
template <typename T>
void upsample_nearest_backward(const T* gy, T* gx, const cpu::ResizeGeometry& g, int device);

}  // namespace mmfuse::cuda
