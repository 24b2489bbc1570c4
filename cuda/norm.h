// Batch norm (with modalities) and dropout on CUDA: the twins of core/cpu/norm.h. No CUDA
// headers here.
#pragma once
#include <cstdint>

#include "base/geometry/norm.h"

namespace mmfuse::cuda {

// The twins of cpu::batch_norm_stats, _prepare, _apply, _backward_reduce, _param_grads and
// _backward_input (same arguments, device pointers, plus the device), with the formulas of
// base/geometry/norm.h. The per-group reductions (statistics, and sum(dy), sum(dy (x - mean))
// backward) run as one launch over every group of every modality, cut into chunks that depend
// on the shape only, with a fixed tree per block (cuda/block_reduce.cuh) and the chunks folded
// in order: deterministic. The per-group steps are one thread per group; the elementwise
// passes one fused kernel each.
template <typename T>
void batch_norm_stats(const T* x, const cpu::BatchNormGeometry& geo, double* mean, double* var, int device);
template <typename T>
void batch_norm_prepare(T* running_mean, T* running_var, int64_t groups, bool batch_stats, int64_t update_count,
                        double momentum, double eps, double* mean, double* var, double* invstd, int device);
template <typename T>
void batch_norm_apply(const T* x, const cpu::BatchNormGeometry& geo, const double* mean, const double* invstd,
                      const T* weight, const T* bias, T* y, int device);
template <typename T>
void batch_norm_backward_reduce(const T* dy, const T* x, const cpu::BatchNormGeometry& geo, const double* mean,
                                double* sum_dy, double* sum_dy_xmu, int device);
template <typename T>
void batch_norm_param_grads(const double* sum_dy, const double* sum_dy_xmu, const double* invstd, int64_t groups,
                            T* dw, T* db, int device);
template <typename T>
void batch_norm_backward_input(const T* dy, const T* x, const cpu::BatchNormGeometry& geo, const double* mean,
                               const double* invstd, const T* weight, const double* sum_dy,
                               const double* sum_dy_xmu, bool batch_stats, T* dx, int device);

// Inverted dropout with the Philox stream of cpu::dropout_apply: element i is decided by word
// offset + i under `seed`, so the mask equals the CPU's for the same generator state.
template <typename T>
void dropout_apply(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset, int device);

}  // namespace mmfuse::cuda
