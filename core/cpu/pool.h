// CPU loops of the pooling family, templated on the element type. Every kernel works on
// `planes` = N*C independent H x W maps and parallelises over planes only, so each output and
// each input gradient is accumulated in a fixed order whatever the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "base/geometry/pool.h"
#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

// Planes per parallel chunk: about 16K input elements.
inline int64_t pool_plane_grain(int64_t plane_size) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(plane_size, 1));
}

namespace detail {

// The scan of one input row for the output columns [ow0, ow1) of a row of outputs: each takes
// the columns of its window, clipped to the input, in order.
template <typename T, typename I>
void max_pool_row_scalar(const T* row, int64_t row_base, int64_t ow0, int64_t ow1, const Pool2dGeometry& g,
                         T* best, I* at) {
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    int64_t w0 = std::max<int64_t>(ow * g.stride_w - g.pad_w, 0);
    int64_t w1 = std::min(ow * g.stride_w - g.pad_w + g.kernel_w, g.in_w);
    for (int64_t w = w0; w < w1; ++w)
      if (row[w] > best[ow] || std::isnan(row[w])) best[ow] = row[w], at[ow] = static_cast<I>(row_base + w);
  }
}

// The same for float with int32 indices, four columns at a time in the compiler's generic
// vectors (SSE2 or NEON registers; GCC and Clang both have them): compare, then select by the
// mask, so that no branch depends on the data. Columns [ow0, ow1) must lie inside the input
// (ow0 * stride >= pad); the last ones, short of a vector, go through the scalar scan.
inline void max_pool_row_f32(const float* row, int64_t row_base, int64_t ow0, int64_t ow1, const Pool2dGeometry& g,
                             float* best, int32_t* at) {
  using VF = float __attribute__((vector_size(16)));
  using VI = int32_t __attribute__((vector_size(16)));
  const int64_t s = g.stride_w;
  const int32_t s32 = static_cast<int32_t>(s);
  const VI lane = {0, s32, 2 * s32, 3 * s32};
  int64_t j = ow0;
  for (; j + 4 <= ow1; j += 4) {
    VF b;
    VI a;
    std::memcpy(&b, best + j, sizeof b);
    std::memcpy(&a, at + j, sizeof a);
    for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const int64_t w0 = j * s - g.pad_w + kw;  // the first column's input column, >= 0
      const float* r = row + w0;
      VF v = {r[0], r[s], r[2 * s], r[3 * s]};
      VI take = (v > b) | (v != v);  // greater, or NaN: -1 lanes
      b = reinterpret_cast<VF>((reinterpret_cast<VI>(v) & take) | (reinterpret_cast<VI>(b) & ~take));
      VI idx = static_cast<int32_t>(row_base + w0) + lane;
      a = (idx & take) | (a & ~take);
    }
    std::memcpy(best + j, &b, sizeof b);
    std::memcpy(at + j, &a, sizeof a);
  }
  max_pool_row_scalar(row, row_base, j, ow1, g, best, at);
}

template <typename I, typename T>
void max_pool2d_planes(const T* x, T* y, int64_t* argmax, const Pool2dGeometry& g, int64_t p0, int64_t p1) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  // The output columns whose windows need no clipping: ow * stride - pad >= 0 and
  // ow * stride - pad + kernel <= in_w.
  const int64_t lo = std::min(g.out_w, (g.pad_w + g.stride_w - 1) / g.stride_w);
  const int64_t hi = g.in_w + g.pad_w >= g.kernel_w
                         ? std::max(lo, std::min(g.out_w, (g.in_w + g.pad_w - g.kernel_w) / g.stride_w + 1))
                         : lo;
  std::vector<T> best(static_cast<size_t>(g.out_w));
  std::vector<I> at(best.size());
  for (int64_t p = p0; p < p1; ++p) {
    const T* xp = x + p * in_plane;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * g.stride_h - g.pad_h, 0);
      const int64_t h1 = std::min(oh * g.stride_h - g.pad_h + g.kernel_h, g.in_h);
      // Nothing taken (all -inf) leaves the window's first element, clipped to the input.
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        best[ow] = -std::numeric_limits<T>::infinity();
        at[ow] = static_cast<I>(h0 * g.in_w + std::max<int64_t>(ow * g.stride_w - g.pad_w, 0));
      }
      // Window rows outside, output columns inside: each output still sees its window in
      // row-major order, keeping the first maximum and letting a NaN take over (strict >, or
      // NaN, as PyTorch): the values, ties and NaN of a window-by-window scan.
      for (int64_t h = h0; h < h1; ++h) {
        const T* row = xp + h * g.in_w;
        max_pool_row_scalar(row, h * g.in_w, 0, lo, g, best.data(), at.data());  // clipped columns
        max_pool_row_scalar(row, h * g.in_w, hi, g.out_w, g, best.data(), at.data());
        if constexpr (std::is_same_v<T, float> && std::is_same_v<I, int32_t>)
          max_pool_row_f32(row, h * g.in_w, lo, hi, g, best.data(), at.data());
        else
          max_pool_row_scalar(row, h * g.in_w, lo, hi, g, best.data(), at.data());
      }
      T* yr = y + p * out_plane + oh * g.out_w;
      int64_t* ar = argmax + p * out_plane + oh * g.out_w;
      for (int64_t ow = 0; ow < g.out_w; ++ow) yr[ow] = best[ow], ar[ow] = at[ow];
    }
  }
}

}  // namespace detail

// argmax[o] is the index h * in_w + w of the output's maximum within its input plane (the
// layout of PyTorch's max_pool2d indices). Padding is never chosen: it acts as -inf.
template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* argmax, const Pool2dGeometry& g) {
  int64_t in_plane = g.in_h * g.in_w;
  // Indices of the lane width of T where the plane allows (the selects vectorise in step).
  bool narrow = sizeof(T) == 4 && in_plane < (int64_t{1} << 31);
  parallel_for(g.planes, pool_plane_grain(in_plane), [&](int64_t p0, int64_t p1) {
    if (narrow)
      detail::max_pool2d_planes<int32_t>(x, y, argmax, g, p0, p1);
    else
      detail::max_pool2d_planes<int64_t>(x, y, argmax, g, p0, p1);
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
