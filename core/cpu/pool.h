// CPU loops of the pooling family, templated on the element type. Every kernel works on
// `planes` = N*C independent H x W maps and parallelises over planes only, so each output and
// each input gradient is accumulated in a fixed order whatever the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

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
  // Separable: the maximum of each window row first (every input row once, for every output
  // column), then the maximum of those over the window's rows. Each step keeps the first
  // maximum in scan order and lets a NaN take over (strict >, or NaN, as PyTorch), so the pair
  // picks what a scan of the whole window in row-major order picks — values, ties and NaN —
  // with kh + kw comparisons per output instead of kh * kw.
  auto take = [](T v, T best) { return v > best || std::isnan(v); };
  parallel_for(g.planes, pool_plane_grain(in_plane), [&](int64_t p0, int64_t p1) {
    std::vector<T> row_max(static_cast<size_t>(g.in_h * g.out_w));
    std::vector<int64_t> row_arg(row_max.size());  // the column w of each row maximum
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * in_plane;
      for (int64_t h = 0; h < g.in_h; ++h)
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          int64_t w0 = ow * g.stride_w - g.pad_w;
          int64_t w1 = std::min(w0 + g.kernel_w, g.in_w);
          w0 = std::max<int64_t>(w0, 0);
          T best = -std::numeric_limits<T>::infinity();
          int64_t at = w0;
          for (int64_t w = w0; w < w1; ++w)
            if (take(xp[h * g.in_w + w], best)) best = xp[h * g.in_w + w], at = w;
          row_max[h * g.out_w + ow] = best;
          row_arg[h * g.out_w + ow] = at;
        }
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        int64_t h0 = oh * g.stride_h - g.pad_h;
        int64_t h1 = std::min(h0 + g.kernel_h, g.in_h);
        h0 = std::max<int64_t>(h0, 0);
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          T best = -std::numeric_limits<T>::infinity();
          int64_t at = h0 * g.in_w + std::max<int64_t>(ow * g.stride_w - g.pad_w, 0);
          for (int64_t h = h0; h < h1; ++h)
            if (take(row_max[h * g.out_w + ow], best)) best = row_max[h * g.out_w + ow], at = h * g.in_w + row_arg[h * g.out_w + ow];
          y[p * out_plane + oh * g.out_w + ow] = best;
          argmax[p * out_plane + oh * g.out_w + ow] = at;
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
