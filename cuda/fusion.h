// The fusion family on CUDA: the twins of core/cpu/fusion.h (tensors seen as [rows, channels,
// inner], raw pointers, sizes, the Exchange, plus the device). Which stacked row feeds which
// is computed inside the kernels from the Exchange (base/geometry/fusion.h, the functions the
// CPU loops call), so no call uploads a table and none synchronises. Every reduction
// (channel_gate's de, the ensemble's d alpha) is deterministic: fixed chunks that depend on
// the shape only, fixed trees (cuda/block_reduce.cuh), no atomics. No CUDA headers here.
#pragma once
#include <cstdint>
#include <vector>

#include "base/geometry/fusion.h"

namespace mmfuse::cuda {

using cpu::Exchange;  // base/geometry/fusion.h: built once by the op front-end for either device

// channel_shuffle: y[b, c] = x[b, c] for c < keep, x[giver(b), c] for c >= keep (x[b, c]
// where giver(b) < 0). Its adjoint, dx[b, c] = dy[b, c] for c < keep, and for c >= keep
// (dy[b, c] where giver(b) < 0) + (dy[taker(b), c] where taker(b) >= 0), is the same
// arithmetic as cpu::channel_shuffle_backward, so both agree to the bit.
template <typename T>
void channel_shuffle_forward(const T* x, T* y, int64_t rows, int64_t channels, int64_t inner, int64_t keep,
                             const Exchange& ex, int device);
template <typename T>
void channel_shuffle_backward(const T* dy, T* dx, int64_t rows, int64_t channels, int64_t inner, int64_t keep,
                              const Exchange& ex, int device);

// cpu::pixel_shift_add in one kernel: forward (y given, a read from giver rows, sign +1) reads
// y and a once and writes out once; backward (y null, a = the output gradient read from
// taker rows, sign -1) is the shifted adjoint into a's gradient.
template <typename T>
void pixel_shift_add(const T* y, const T* a, T* out, int64_t rows, int64_t channels, int64_t height, int64_t width,
                     int64_t group_size, int64_t groups, int64_t shift, const Exchange& ex, bool backward,
                     int device);

// MMTM's gate over planes p = (n, c): the sigmoid is evaluated once per plane (in double,
// as the CPU), then y = T(g) * x. Backward: dx = T(g) * dy (if dx) and de[p] =
// (sum_i dy * x in double) * g * (1 - g / scale) (if de), the sum a deterministic
// per-plane reduction fused with the dx pass (dy is read once).
template <typename T>
void channel_gate_forward(const T* x, const T* e, T* y, int64_t planes, int64_t inner, double scale, int device);
template <typename T>
void channel_gate_backward(const T* x, const T* e, const T* dy, T* dx, T* de, int64_t planes, int64_t inner,
                           double scale, int device);

// softmax(alpha) into weights (device, double, `modalities` values) by one thread in the
// CPU's order: the ensemble's weights never visit the host.
template <typename T>
void ensemble_weights(const T* alpha, double* weights, int64_t modalities, int device);
// out[i] = sum_m weights[m] * logits[m * slice + i] (double accumulation, as the CPU).
template <typename T>
void modality_ensemble_forward(const T* logits, const double* weights, T* out, int64_t modalities, int64_t slice,
                               int device);
// dlogits[m * slice + i] = T(weights[m]) * dout[i] (if dlogits); dalpha (if given) =
// w_m * (dw_m - sum_j w_j dw_j) with dw_m = sum_i dout[i] * logits[m * slice + i], a
// deterministic reduction on the device.
template <typename T>
void modality_ensemble_backward(const T* logits, const double* weights, const T* dout, T* dlogits, T* dalpha,
                                int64_t modalities, int64_t slice, int device);

}  // namespace mmfuse::cuda
