// CPU loops of the fusion family, templated on the element type: the twins of cuda/fusion.h,
// with the same arguments (raw pointers, sizes, the Exchange of base/geometry/fusion.h).
// Tensors are seen as [rows, channels, inner] (rows = the stacked batch M*N, inner = the
// product of trailing dims); which stacked row feeds which is computed per row from the
// Exchange, with the functions the CUDA kernels call.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/geometry/fusion.h"
#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

constexpr int64_t kFusionGrain = 32768;  // elements per parallel chunk

// Channels [keep, C) of output row b: x[s0, c] + x[s1, c] with (s0, s1) = sources(b) (a term
// is absent where its row is -1; zeros where both are); channels [0, keep) are copied.
template <typename T, typename Sources>
void channel_route(const T* x, T* y, int64_t rows, int64_t channels, int64_t inner, int64_t keep, Sources sources) {
  int64_t planes = rows * channels;
  parallel_for(planes, std::max<int64_t>(1, kFusionGrain / std::max<int64_t>(inner, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      int64_t b = p / channels, c = p % channels;
      T* out = y + p * inner;
      if (c < keep) {
        std::copy(x + p * inner, x + (p + 1) * inner, out);
        continue;
      }
      int64_t s0, s1;
      sources(b, s0, s1);
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

// Channel shuffle: y[b, c] = x[b, c] for c < keep, x[giver(b), c] for c >= keep (x[b, c]
// where giver(b) < 0).
template <typename T>
void channel_shuffle_forward(const T* x, T* y, int64_t rows, int64_t channels, int64_t inner, int64_t keep,
                             const Exchange& ex) {
  const ExchangeIndex<int64_t> e = exchange_index<int64_t>(ex);
  channel_route(x, y, rows, channels, inner, keep, [&](int64_t b, int64_t& s0, int64_t& s1) {
    int64_t g = giver_of(e, b);
    s0 = g >= 0 ? g : b;
    s1 = -1;
  });
}

// Its adjoint: channels [keep, C) of dx[b] are dy[b] where b keeps its own (giver(b) < 0),
// plus dy[taker(b)] where b's channels went to its taker.
template <typename T>
void channel_shuffle_backward(const T* dy, T* dx, int64_t rows, int64_t channels, int64_t inner, int64_t keep,
                              const Exchange& ex) {
  const ExchangeIndex<int64_t> e = exchange_index<int64_t>(ex);
  channel_route(dy, dx, rows, channels, inner, keep, [&](int64_t b, int64_t& s0, int64_t& s1) {
    s0 = giver_of(e, b) >= 0 ? -1 : b;
    s1 = taker_of(e, b);
  });
}

// out[b, c, i, j] = y[b, c, i, j] + a[src(b), c, i - sign*dh, j - sign*dw] for the shifted
// channels c < groups*group_size of a row with src(b) >= 0 (zero where the source pixel lies
// outside the map); out = y elsewhere. Forward: src = giver, sign = +1. Backward (y null, read
// as zeros; a = the output gradient): src = taker, sign = -1, the gradient into a.
template <typename T>
void pixel_shift_add(const T* y, const T* a, T* out, int64_t rows, int64_t channels, int64_t height,
                     int64_t width, int64_t group_size, int64_t groups, int64_t shift, const Exchange& ex,
                     bool backward) {
  const ExchangeIndex<int64_t> e = exchange_index<int64_t>(ex);
  const int64_t sign = backward ? -1 : +1;
  int64_t plane = height * width, planes = rows * channels, shifted = groups * group_size;
  parallel_for(planes, std::max<int64_t>(1, kFusionGrain / std::max<int64_t>(plane, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      int64_t b = p / channels, c = p % channels;
      T* o = out + p * plane;
      const T* yp = y ? y + p * plane : nullptr;
      int64_t src = backward ? taker_of(e, b) : giver_of(e, b);
      if (src < 0 || c >= shifted) {
        if (yp) std::copy(yp, yp + plane, o);
        else std::fill(o, o + plane, T(0));
        continue;
      }
      int64_t dh, dw;
      pixel_shift_offset(c / group_size, shift, dh, dw);
      dh *= sign;
      dw *= sign;
      const T* ap = a + (src * channels + c) * plane;
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
      T gate = static_cast<T>(gate_value(e[p], scale));
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
      double g = gate_value(e[p], scale);
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
        de[p] = static_cast<T>(gate_grad(dg, g, scale));
      }
    }
  });
}

// softmax(alpha) into weights (double, `modalities` values).
template <typename T>
void ensemble_weights(const T* alpha, double* weights, int64_t modalities) {
  if (modalities > 0) ensemble_weights_of(alpha, weights, modalities);
}

// Ensemble: out[i] = sum_m weights[m] * logits[m*slice + i], i < slice.
template <typename T>
void modality_ensemble_forward(const T* logits, const double* weights, T* out, int64_t modalities, int64_t slice) {
  parallel_for(slice, kFusionGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] = ensemble_mix(logits, weights, modalities, slice, i);
  });
}

// Its gradient: dlogits[m*slice + i] = weights[m] * dout[i] (if dlogits), and dalpha (if
// dalpha) through the softmax from dw[m] = sum_i dout[i] * logits[m*slice + i]. The sums run
// over fixed blocks added in order, so they do not depend on the thread count.
template <typename T>
void modality_ensemble_backward(const T* logits, const double* weights, const T* dout, T* dlogits, T* dalpha,
                                int64_t modalities, int64_t slice) {
  constexpr int64_t block = 4096;
  int64_t blocks = (slice + block - 1) / block;
  std::vector<double> partial(dalpha ? static_cast<size_t>(blocks * modalities) : 0, 0.0);
  parallel_for(blocks, 8, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      int64_t i0 = k * block, i1 = std::min(slice, i0 + block);
      for (int64_t m = 0; m < modalities; ++m) {
        const T* lm = logits + m * slice;
        if (dalpha) {
          double s = 0;
          for (int64_t i = i0; i < i1; ++i) s += static_cast<double>(dout[i]) * lm[i];
          partial[k * modalities + m] = s;
        }
        if (dlogits) {
          T w = static_cast<T>(weights[m]);
          T* dm = dlogits + m * slice;
          for (int64_t i = i0; i < i1; ++i) dm[i] = w * dout[i];
        }
      }
    }
  });
  if (!dalpha) return;
  std::vector<double> dweights(static_cast<size_t>(modalities));
  for (int64_t m = 0; m < modalities; ++m) {
    double s = 0;
    for (int64_t k = 0; k < blocks; ++k) s += partial[k * modalities + m];
    dweights[m] = s;
  }
  ensemble_alpha_grad(weights, dweights.data(), dalpha, modalities);
}

}  // namespace mmfuse::cpu
