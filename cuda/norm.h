// Batch norm (with modalities) and dropout on CUDA: the twins of core/cpu/norm.h. No CUDA
// headers here.
#pragma once
#include <cstdint>

#include "base/geometry/norm.h"

namespace mmfuse::cuda {

// The whole forward on the device. batch_stats: per-(modality, channel) statistics of x (one
// launch covering every group of every modality, a block per group, shifted sums in double in
// a fixed tree: deterministic), and when update_running also the running statistics (as
// cpu::batch_norm_update_running). Otherwise mean and variance are read from running_mean /
// running_var. mean and invstd (device, double, geo.groups() each) receive what backward
// needs; then y = x * a + b with a = gamma*invstd, b = beta - mean*a (one fused kernel).
// weight and bias may be null.
template <typename T>
void batch_norm_forward(const T* x, const cpu::BatchNormGeometry& geo, bool batch_stats, bool update_running,
                        T* running_mean, T* running_var, double momentum, double eps, const T* weight, const T* bias,
                        T* y, double* mean, double* invstd, int device);
// Two passes: per-group sum(dy) and sum(dy * (x - mean)) (a block per group, fixed tree),
// writing dw = sum_dy_xmu * invstd and db = sum_dy, then dx by the closed form of
// cpu::batch_norm_backward_input. dx, dw, db may each be null (not wanted).
template <typename T>
void batch_norm_backward(const T* dy, const T* x, const cpu::BatchNormGeometry& geo, const double* mean,
                         const double* invstd, const T* weight, bool batch_stats, T* dx, T* dw, T* db, int device);

// Inverted dropout with the Philox stream of cpu::dropout_apply: element i is decided by word
// offset + i under `seed`, so the mask equals the CPU's for the same generator state.
template <typename T>
void dropout_apply(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset, int device);

}  // namespace mmfuse::cuda
