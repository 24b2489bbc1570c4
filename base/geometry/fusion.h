// The geometry and formulas of the fusion family (core/cpu/fusion.h and its CUDA twins in
// cuda/fusion.cu take the same arguments): the cyclic exchange between the modalities of a
// stacked batch, pixel shift's per-group offset, MMTM's gate and the ensemble's softmax
// weights. Plain structs and host-device functions, nothing of Tensor, OpenMP or CUDA.
#pragma once
#include <cmath>
#include <cstdint>

#include "base/philox.h"  // MMF_HD

namespace mmfuse::cpu {

// Most modalities an Exchange describes (one bit each).
constexpr int64_t kMaxExchangeModalities = 64;

// The cyclic exchange over a modality-stacked batch of rows b = m * batch + n:
// giver(b) = ((m+1) mod M) * batch + n where modality m receives, else -1 (the row that feeds
// b); taker(b) = ((m-1) mod M) * batch + n where modality m-1 receives, else -1 (the row that
// b feeds; the inverse of giver). Built once by the op front-end, read by either device.
struct Exchange {
  int64_t batch = 1;
  int64_t modalities = 1;
  uint64_t receives = 0;  // bit m: modality m receives
};

// The exchange in the kernels' index type I (32-bit where the tensor is small enough).
template <typename I>
struct ExchangeIndex {
  I batch, modalities;
  uint64_t receives;
};

template <typename I>
MMF_HD ExchangeIndex<I> exchange_index(const Exchange& ex) {
  return {static_cast<I>(ex.batch), static_cast<I>(ex.modalities), ex.receives};
}

template <typename I>
MMF_HD I giver_of(const ExchangeIndex<I>& ex, I b) {
  I m = b / ex.batch, n = b % ex.batch;
  if (!((ex.receives >> m) & 1u)) return -1;
  I next = m + 1 == ex.modalities ? 0 : m + 1;
  return next * ex.batch + n;
}

template <typename I>
MMF_HD I taker_of(const ExchangeIndex<I>& ex, I b) {
  I m = b / ex.batch, n = b % ex.batch;
  I prev = m == 0 ? ex.modalities - 1 : m - 1;
  if (!((ex.receives >> prev) & 1u)) return -1;
  return prev * ex.batch + n;
}

// Pixel shift of channel group q: content moves by (dh, dw) pixels, direction q mod 4 =
// down, right, left, up; the distance doubles with each cycle through the four directions.
template <typename I, typename S>
MMF_HD void pixel_shift_offset(I group, S shift, I& dh, I& dw) {
  I dist = static_cast<I>(shift) << (group / 4);
  dh = group % 4 == 0 ? dist : (group % 4 == 3 ? -dist : I(0));
  dw = group % 4 == 1 ? dist : (group % 4 == 2 ? -dist : I(0));
}

MMF_HD double exp_of(double v) {
#ifdef __CUDA_ARCH__
  return ::exp(v);
#else
  return std::exp(v);
#endif
}

// MMTM's gate of a plane: scale * sigmoid(e), in double.
template <typename T>
MMF_HD double gate_value(T e, double scale) {
  return scale / (1 + exp_of(-static_cast<double>(e)));
}

// d loss / d e of the gate g = gate_value(e, scale), given dg = sum_i dy * x.
MMF_HD double gate_grad(double dg, double g, double scale) { return dg * g * (1 - g / scale); }

// The ensemble's weights softmax(alpha) in double, shifted by the first maximum for stability.
template <typename T>
MMF_HD void ensemble_weights_of(const T* alpha, double* w, int64_t modalities) {
  double top = static_cast<double>(alpha[0]);
  for (int64_t m = 1; m < modalities; ++m)
    if (top < static_cast<double>(alpha[m])) top = static_cast<double>(alpha[m]);
  double total = 0;
  for (int64_t m = 0; m < modalities; ++m) total += (w[m] = exp_of(static_cast<double>(alpha[m]) - top));
  for (int64_t m = 0; m < modalities; ++m) w[m] /= total;
}

// The ensemble's output element i < slice: sum_m w_m * logits[m * slice + i], in double.
template <typename T>
MMF_HD T ensemble_mix(const T* logits, const double* w, int64_t modalities, int64_t slice, int64_t i) {
  double s = 0;
  for (int64_t m = 0; m < modalities; ++m) s += w[m] * static_cast<double>(logits[m * slice + i]);
  return static_cast<T>(s);
}

// Through the softmax: dalpha_m = w_m * (dw_m - sum_j w_j dw_j).
template <typename T>
MMF_HD void ensemble_alpha_grad(const double* w, const double* dw, T* dalpha, int64_t modalities) {
  double mean = 0;
  for (int64_t m = 0; m < modalities; ++m) mean += w[m] * dw[m];
  for (int64_t m = 0; m < modalities; ++m) dalpha[m] = static_cast<T>(w[m] * (dw[m] - mean));
}

}  // namespace mmfuse::cpu
