// CPU loops of the fusion family, templated on the element type. Each takes raw pointers and
// sizes only, so that its CUDA twin can take the same arguments. Tensors are seen as
// [rows, channels, inner] (rows = the stacked batch M*N, inner = the product of trailing
// dims); row tables (src*) say which input row feeds each output row, -1 for none.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

constexpr int64_t kFusionGrain = 32768;  // elements per parallel chunk

// Channel shuffle and its adjoint in one loop: y[b, c] = x[b, c] for c < keep, and for
// c >= keep y[b, c] = x[src0[b], c] + x[src1[b], c] (a term is absent where its table
// says -1). The forward uses src0 only; the backward needs both because a giver's channels
// [keep, C) may feed its own output and its receiver's.
template <typename T>
void channel_route(const T* x, T* y, int64_t rows, int64_t channels, int64_t inner, int64_t keep,
                   const int64_t* src0, const int64_t* src1) {
  int64_t planes = rows * channels;
  parallel_for(planes, std::max<int64_t>(1, kFusionGrain / std::max<int64_t>(inner, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      int64_t b = p / channels, c = p % channels;
      T* out = y + p * inner;
      if (c < keep) {
        std::copy(x + p * inner, x + (p + 1) * inner, out);
        continue;
      }
      int64_t s0 = src0 ? src0[b] : -1, s1 = src1 ? src1[b] : -1;
      const T* a = s0 >= 0 ? x + (s0 * channels + c) * inner : nullptr;
      const T* d = s1 >= 0 ? x + (s1 * channels + c) * inner : nullptr;
      if (a && d) {
        for (int64_t i = 0; i < inner; ++i) out[i] = a[i] + d[i];
      } else if (a || d) {
        std::copy(a ? a : d, (a ? a : d) + inner, out);
      } else {
        std::fill(out, out + inner, T(0));
      }
    }
  });
}

// Pixel shift of channel group q: content moves by (dh, dw) pixels, direction q mod 4 =
// down, right, left, up; the distance doubles with each cycle through the four directions.
inline void pixel_shift_offset(int64_t group, int64_t shift, int64_t& dh, int64_t& dw) {
  static const int64_t dirs[4][2] = {{1, 0}, {0, 1}, {0, -1}, {-1, 0}};
  int64_t dist = shift << (group / 4);
  dh = dirs[group % 4][0] * dist;
  dw = dirs[group % 4][1] * dist;
}

// out[b, c, i, j] = y[b, c, i, j] + a[src[b], c, i - sign*dh, j - sign*dw] for the shifted
// channels c < groups*group_size of a row with src[b] >= 0 (zero where the source pixel lies
// outside the map); out = y elsewhere. y may be null (read as zeros). sign = +1 is the
// forward; sign = -1 with src the inverse table and y null is the gradient into a.
template <typename T>
void pixel_shift_add(const T* y, const T* a, T* out, int64_t rows, int64_t channels, int64_t height,
                     int64_t width, int64_t group_size, int64_t groups, int64_t shift, const int64_t* src,
                     int64_t sign) {
  int64_t plane = height * width, planes = rows * channels, shifted = groups * group_size;
  parallel_for(planes, std::max<int64_t>(1, kFusionGrain / std::max<int64_t>(plane, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      int64_t b = p / channels, c = p % channels;
      T* o = out + p * plane;
      const T* yp = y ? y + p * plane : nullptr;
      if (src[b] < 0 || c >= shifted) {
        if (yp) std::copy(yp, yp + plane, o);
        else std::fill(o, o + plane, T(0));
        continue;
      }
      int64_t dh, dw;
      pixel_shift_offset(c / group_size, shift, dh, dw);
      dh *= sign;
      dw *= sign;
      const T* ap = a + (src[b] * channels + c) * plane;
      // Output columns [j0, j1) have their source column j - dw inside the map.
      int64_t j0 = std::clamp<int64_t>(dw, 0, width), j1 = std::clamp<int64_t>(width + dw, 0, width);
      for (int64_t i = 0; i < height; ++i) {
        T* orow = o + i * width;
        const T* yrow = yp ? yp + i * width : nullptr;
        int64_t si = i - dh;
        if (si < 0 || si >= height) {
          if (yrow) std::copy(yrow, yrow + width, orow);
          else std::fill(orow, orow + width, T(0));
          continue;
        }
        const T* arow = ap + si * width;
        for (int64_t j = 0; j < j0; ++j) orow[j] = yrow ? yrow[j] : T(0);
        for (int64_t j = j0; j < j1; ++j) orow[j] = (yrow ? yrow[j] : T(0)) + arow[j - dw];
        for (int64_t j = std::max(j0, j1); j < width; ++j) orow[j] = yrow ? yrow[j] : T(0);
      }
    }
  });
}

// MMTM gating: y[p, i] = scale * sigmoid(e[p]) * x[p, i] over planes p = (n, c).
template <typename T>
void channel_gate_forward(const T* x, const T* e, T* y, int64_t planes, int64_t inner, double scale) {
  parallel_for(planes, std::max<int64_t>(1, kFusionGrain / std::max<int64_t>(inner, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T gate = static_cast<T>(scale / (1 + std::exp(-static_cast<double>(e[p]))));
      const T* xp = x + p * inner;
      T* yp = y + p * inner;
      for (int64_t i = 0; i < inner; ++i) yp[i] = gate * xp[i];
    }
  });
}

// Its gradient in one pass: dx = dy * g (if dx), and de = (sum_i dy * x) * g * (1 - g/scale)
// (if de), with g = scale * sigmoid(e) recomputed per plane.
template <typename T>
void channel_gate_backward(const T* x, const T* e, const T* dy, T* dx, T* de, int64_t planes, int64_t inner,
                           double scale) {
  parallel_for(planes, std::max<int64_t>(1, kFusionGrain / std::max<int64_t>(inner, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      double g = scale / (1 + std::exp(-static_cast<double>(e[p])));
      const T* dyp = dy + p * inner;
      if (dx) {
        T gate = static_cast<T>(g);
        T* dxp = dx + p * inner;
        for (int64_t i = 0; i < inner; ++i) dxp[i] = gate * dyp[i];
      }
      if (de) {
        const T* xp = x + p * inner;
        double dg = 0;
        for (int64_t i = 0; i < inner; ++i) dg += static_cast<double>(dyp[i]) * xp[i];
        de[p] = static_cast<T>(dg * g * (1 - g / scale));
      }
    }
  });
}

// Ensemble: out[i] = sum_m weights[m] * logits[m*slice + i], i < slice.
template <typename T>
void modality_ensemble_forward(const T* logits, const double* weights, T* out, int64_t modalities, int64_t slice) {
  parallel_for(slice, kFusionGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double s = 0;
      for (int64_t m = 0; m < modalities; ++m) s += weights[m] * logits[m * slice + i];
      out[i] = static_cast<T>(s);
    }
  });
}

// Its gradient: dweights[m] = sum_i dout[i] * logits[m*slice + i] (always), and
// dlogits[m*slice + i] = weights[m] * dout[i] (if dlogits). The sums run over fixed blocks
// added in order, so they do not depend on the thread count.
template <typename T>
void modality_ensemble_backward(const T* logits, const double* weights, const T* dout, T* dlogits,
                                double* dweights, int64_t modalities, int64_t slice) {
  constexpr int64_t block = 4096;
  int64_t blocks = (slice + block - 1) / block;
  std::vector<double> partial(static_cast<size_t>(blocks * modalities), 0.0);
  parallel_for(blocks, 8, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      int64_t i0 = k * block, i1 = std::min(slice, i0 + block);
      for (int64_t m = 0; m < modalities; ++m) {
        const T* lm = logits + m * slice;
        double s = 0;
        for (int64_t i = i0; i < i1; ++i) s += static_cast<double>(dout[i]) * lm[i];
        partial[k * modalities + m] = s;
        if (dlogits) {
          T w = static_cast<T>(weights[m]);
          T* dm = dlogits + m * slice;
          for (int64_t i = i0; i < i1; ++i) dm[i] = w * dout[i];
        }
      }
    }
  });
  for (int64_t m = 0; m < modalities; ++m) {
    double s = 0;
    for (int64_t k = 0; k < blocks; ++k) s += partial[k * modalities + m];
    dweights[m] = s;
  }
}

}  // namespace mmfuse::cpu
