// CPU loops of the pooling family, templated on the element type. Every kernel works on
// `planes` = N*C independent H x W maps and parallelises over planes only, so each output and
// each input gradient is accumulated in a fixed order whatever the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "base/geometry/pool.h"
#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

// Planes per parallel chunk: about 16K input elements.
inline int64_t pool_plane_grain(int64_t plane_size) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(plane_size, 1));
}

// argmax[o] is the index h * in_w + w of the output's maximum within its input plane (the
// layout of PyTorch's max_pool2d indices). Padding is never chosen: it acts as -inf.
template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* argmax, const Pool2dGeometry& g) {
  int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  parallel_for(g.planes, pool_plane_grain(in_plane), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * in_plane;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        int64_t h0 = oh * g.stride_h - g.pad_h;
        int64_t h1 = std::min(h0 + g.kernel_h, g.in_h);
        h0 = std::max<int64_t>(h0, 0);
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          int64_t w0 = ow * g.stride_w - g.pad_w;
          int64_t w1 = std::min(w0 + g.kernel_w, g.in_w);
          w0 = std::max<int64_t>(w0, 0);
          int64_t best = h0 * g.in_w + w0;
          T best_value = -std::numeric_limits<T>::infinity();
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) {
              T v = xp[h * g.in_w + w];
              // Strict > keeps the first maximum; NaN propagates as in PyTorch.
              if (v > best_value || std::isnan(v)) {
                best_value = v;
                best = h * g.in_w + w;
              }
            }
          int64_t o = p * out_plane + oh * g.out_w + ow;
          y[o] = best_value;
          argmax[o] = best;
        }
      }
    }
  });
}

// gx must be zeroed by the caller.
template <typename T>
void max_pool2d_backward(const T* gy, const int64_t* argmax, T* gx, const Pool2dGeometry& g) {
  int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  parallel_for(g.planes, pool_plane_grain(in_plane), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t o = p * out_plane; o < (p + 1) * out_plane; ++o) gx[p * in_plane + argmax[o]] += gy[o];
  });
}

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dGeometry& g, bool count_include_pad) {
  int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  parallel_for(g.planes, pool_plane_grain(in_plane), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * in_plane;
      for (int64_t oh = 0; oh < g.out_h; ++oh)
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          AvgWindow win = avg_window(g, oh, ow, count_include_pad);
          T sum = 0;
          for (int64_t h = win.h0; h < win.h1; ++h)
            for (int64_t w = win.w0; w < win.w1; ++w) sum += xp[h * g.in_w + w];
          // An empty window (impossible under the pad <= kernel/2 check) gives 0, as PyTorch.
          y[p * out_plane + oh * g.out_w + ow] = win.divisor > 0 && win.h0 < win.h1 && win.w0 < win.w1
                                                     ? sum / static_cast<T>(win.divisor)
                                                     : T(0);
        }
    }
  });
}

// gx must be zeroed by the caller.
template <typename T>
void avg_pool2d_backward(const T* gy, T* gx, const Pool2dGeometry& g, bool count_include_pad) {
  int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  parallel_for(g.planes, pool_plane_grain(in_plane), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* gp = gx + p * in_plane;
      for (int64_t oh = 0; oh < g.out_h; ++oh)
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          AvgWindow win = avg_window(g, oh, ow, count_include_pad);
          if (win.divisor <= 0) continue;
          T share = gy[p * out_plane + oh * g.out_w + ow] / static_cast<T>(win.divisor);
          for (int64_t h = win.h0; h < win.h1; ++h)
            for (int64_t w = win.w0; w < win.w1; ++w) gp[h * g.in_w + w] += share;
        }
    }
  });
}

// Mean of each of `rows` contiguous runs of `inner` elements, accumulated in double.
template <typename T>
void row_mean_forward(const T* x, T* y, int64_t rows, int64_t inner) {
  parallel_for(rows, pool_plane_grain(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      double sum = 0;
      for (int64_t i = 0; i < inner; ++i) sum += x[r * inner + i];
      y[r] = static_cast<T>(sum / static_cast<double>(inner));
    }
  });
}

template <typename T>
void row_mean_backward(const T* gy, T* gx, int64_t rows, int64_t inner) {
  parallel_for(rows, pool_plane_grain(inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T share = gy[r] / static_cast<T>(inner);
      for (int64_t i = 0; i < inner; ++i) gx[r * inner + i] = share;
    }
  });
}

}  // namespace mmfuse::cpu
