// CPU loops of the resize family (bilinear and nearest upsampling), templated on the element
// type. The index arithmetic mirrors PyTorch's CPU kernels (ATen/native/UpSample.h) so that
// the same source pixels and weights come out. Kernels parallelise over planes (N*C maps)
// only, so the scatter-adds of the backward run in a fixed order: results are deterministic.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/geometry/resize.h"
#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

inline int64_t resize_plane_grain(int64_t plane_size) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(plane_size, 1));
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
