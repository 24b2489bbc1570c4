// The geometry of resizing and the source pixels (and weights) of each output index, as
// PyTorch's ATen/native/UpSample.h computes them.
// Shared by the CPU kernels (core/cpu/resize.h) and their CUDA twins, which take the same arguments:
// plain structs and index arithmetic, nothing of Tensor, OpenMP or CUDA. The namespace stays
// mmfuse::cpu, where the CPU kernels have always defined these names.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace mmfuse::cpu {

struct ResizeGeometry {
  int64_t planes, in_h, in_w, out_h, out_w;
};

// Source step per output step along one axis (PyTorch's area_pixel_compute_scale): with
// align_corners the corners map onto each other; otherwise 1/scale when a scale factor was
// given (scale > 0), else in/out.
template <typename T>
T linear_ratio(int64_t in, int64_t out, bool align_corners, double scale) {
  if (align_corners) return out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  if (scale > 0) return static_cast<T>(1.0 / scale);
  return static_cast<T>(in) / static_cast<T>(out);
}

// The two source pixels of output index `dst` and their weights (weight0 + weight1 = 1).
template <typename T>
struct LinearTap {
  int64_t index0, index1;
  T weight0, weight1;
};

template <typename T>
LinearTap<T> linear_tap(int64_t dst, int64_t in, int64_t out, bool align_corners, T ratio) {
  // Equal sizes copy, whatever the scale factor said (PyTorch's CPU kernel does the same).
  if (in == out) return {dst, dst, T(1), T(0)};
  T src = align_corners ? ratio * static_cast<T>(dst)
                        : std::max(ratio * (static_cast<T>(dst) + T(0.5)) - T(0.5), T(0));
  int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);  // src >= 0, so truncation floors
  T frac = std::min(std::max(src - static_cast<T>(i0), T(0)), T(1));
  return {i0, i0 < in - 1 ? i0 + 1 : i0, T(1) - frac, frac};
}

template <typename T>
std::vector<LinearTap<T>> linear_taps(int64_t in, int64_t out, bool align_corners, double scale) {
  T ratio = linear_ratio<T>(in, out, align_corners, scale);
  std::vector<LinearTap<T>> taps(out);
  for (int64_t d = 0; d < out; ++d) taps[d] = linear_tap<T>(d, in, out, align_corners, ratio);
  return taps;
}

// PyTorch's nearest_idx for mode='nearest' without a scale factor: the ratio and the product
// are float32 (for every dtype), floored and clamped; equal and doubled sizes are exact.
inline int64_t nearest_source(int64_t dst, int64_t in, int64_t out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  float ratio = static_cast<float>(in) / static_cast<float>(out);
  return std::min(static_cast<int64_t>(std::floor(static_cast<float>(dst) * ratio)), in - 1);
}

inline std::vector<int64_t> nearest_sources(int64_t in, int64_t out) {
  std::vector<int64_t> src(out);
  for (int64_t d = 0; d < out; ++d) src[d] = nearest_source(d, in, out);
  return src;
}

}  // namespace mmfuse::cpu
