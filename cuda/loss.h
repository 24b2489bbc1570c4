// Softmax, log-softmax, cross-entropy and the pointwise losses on CUDA: the twins of
// core/cpu/loss.h (same LineGeometry [outer, dim, inner], raw pointers, plus the device). No
// CUDA headers here. Every floating-point reduction is in a fixed order (no atomics).
#pragma once
#include <cstdint>

#include "base/geometry/loss.h"

namespace mmfuse::cuda {

// One thread per line (outer, inner): max, sum of exponentials in double, output, in the
// CPU's order along the line.
template <typename T>
void softmax_forward(const T* x, T* y, const cpu::LineGeometry& geo, bool log, int device);
template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, const cpu::LineGeometry& geo, bool log, int device);

// The twin of cpu::cross_entropy_check_targets, into *result (host memory): on the device
// (integer atomics: the result does not depend on scheduling), then one 16-byte copy to the
// host (a synchronisation, but no copy of the targets themselves).
void cross_entropy_check_targets(const int32_t* target, int64_t n, int64_t classes, int64_t ignore_index,
                                 cpu::TargetCheck* result, int device);

// Targets must be validated by the caller. lse and loss: device arrays of outer*inner
// doubles (as cpu::cross_entropy_forward).
template <typename T>
void cross_entropy_forward(const T* logits, const int32_t* target, const cpu::LineGeometry& geo, int64_t ignore_index,
                           double* lse, double* loss, int device);
// out[0] = (sum of the per-position losses) / divisor (double accumulation, deterministic;
// out on the device), as cpu::cross_entropy_total.
template <typename T>
void cross_entropy_total(const double* loss, int64_t positions, double divisor, T* out, int device);
// grad is a device pointer (one value, or one per position when grad_per_position).
template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* target, const double* lse, const cpu::LineGeometry& geo,
                            int64_t ignore_index, const T* grad, bool grad_per_position, double scale, T* dx,
                            int device);

// out[i] = f(x[i] - t[i]) (reduction none).
template <typename T>
void pointwise_loss(const T* x, const T* t, T* out, int64_t n, cpu::PointwiseLoss kind, int device);
// out[0] = sum_i f(x[i] - t[i]) / divisor (accumulated in double, deterministic; out on the
// device), as cpu::pointwise_loss_sum.
template <typename T>
void pointwise_loss_sum(const T* x, const T* t, T* out, int64_t n, cpu::PointwiseLoss kind, double divisor,
                        int device);
template <typename T>
void pointwise_loss_backward(const T* x, const T* t, const T* grad, bool grad_per_element, double scale, T* dx, T* dt,
                             int64_t n, cpu::PointwiseLoss kind, int device);

}  // namespace mmfuse::cuda
