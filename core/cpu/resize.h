// CPU loops of the resize family (bilinear and nearest upsampling), templated on the element
// type. The index arithmetic mirrors PyTorch's CPU kernels (ATen/native/UpSample.h) so that
// the same source pixels and weights come out. Kernels parallelise over planes (N*C maps)
// only, so the scatter-adds of the backward run in a fixed order: results are deterministic.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

struct ResizeGeometry {
  int64_t planes, in_h, in_w, out_h, out_w;
};

inline int64_t resize_plane_grain(int64_t plane_size) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(plane_size, 1));
}

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

// scale_h / scale_w: the user's scale factors, or <= 0 when the output size was given.
template <typename T>
void upsample_bilinear_forward(const T* x, T* y, const ResizeGeometry& g, bool align_corners, double scale_h,
                               double scale_w) {
  auto th = linear_taps<T>(g.in_h, g.out_h, align_corners, scale_h);
  auto tw = linear_taps<T>(g.in_w, g.out_w, align_corners, scale_w);
  int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  parallel_for(g.planes, resize_plane_grain(out_plane), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * in_plane;
      T* yp = y + p * out_plane;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const T* r0 = xp + th[oh].index0 * g.in_w;
        const T* r1 = xp + th[oh].index1 * g.in_w;
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const LinearTap<T>& w = tw[ow];
          yp[oh * g.out_w + ow] = th[oh].weight0 * (w.weight0 * r0[w.index0] + w.weight1 * r0[w.index1]) +
                                  th[oh].weight1 * (w.weight0 * r1[w.index0] + w.weight1 * r1[w.index1]);
        }
      }
    }
  });
}

// The adjoint of the forward. gx must be zeroed by the caller.
template <typename T>
void upsample_bilinear_backward(const T* gy, T* gx, const ResizeGeometry& g, bool align_corners, double scale_h,
                                double scale_w) {
  auto th = linear_taps<T>(g.in_h, g.out_h, align_corners, scale_h);
  auto tw = linear_taps<T>(g.in_w, g.out_w, align_corners, scale_w);
  int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  parallel_for(g.planes, resize_plane_grain(out_plane), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* gp = gx + p * in_plane;
      const T* gyp = gy + p * out_plane;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        T* r0 = gp + th[oh].index0 * g.in_w;
        T* r1 = gp + th[oh].index1 * g.in_w;
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const LinearTap<T>& w = tw[ow];
          T v0 = th[oh].weight0 * gyp[oh * g.out_w + ow];
          T v1 = th[oh].weight1 * gyp[oh * g.out_w + ow];
          r0[w.index0] += w.weight0 * v0;
          r0[w.index1] += w.weight1 * v0;
          r1[w.index0] += w.weight0 * v1;
          r1[w.index1] += w.weight1 * v1;
        }
      }
    }
  });
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

template <typename T>
void upsample_nearest_forward(const T* x, T* y, const ResizeGeometry& g) {
  auto sh = nearest_sources(g.in_h, g.out_h), sw = nearest_sources(g.in_w, g.out_w);
  int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  parallel_for(g.planes, resize_plane_grain(out_plane), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const T* row = x + p * in_plane + sh[oh] * g.in_w;
        T* out = y + p * out_plane + oh * g.out_w;
        for (int64_t ow = 0; ow < g.out_w; ++ow) out[ow] = row[sw[ow]];
      }
  });
}

// gx must be zeroed by the caller.
template <typename T>
void upsample_nearest_backward(const T* gy, T* gx, const ResizeGeometry& g) {
  auto sh = nearest_sources(g.in_h, g.out_h), sw = nearest_sources(g.in_w, g.out_w);
  int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  parallel_for(g.planes, resize_plane_grain(out_plane), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        T* row = gx + p * in_plane + sh[oh] * g.in_w;
        const T* grad = gy + p * out_plane + oh * g.out_w;
        for (int64_t ow = 0; ow < g.out_w; ++ow) row[sw[ow]] += grad[ow];
      }
  });
}

}  // namespace mmfuse::cpu
