// CPU loops of the softmax/loss family.
//
// softmax, log_softmax and cross_entropy see their input as [outer, dim, inner] (the reduced
// dim in the middle). A work item is one outer index and a block of up to kLineBlock
// consecutive inner indices, so that every pass over `dim` reads contiguous memory whatever
// the dim; the max, the sum of exponentials and the output are three passes over the block
// (numerically stable: exponents are taken of x - max). Sums are accumulated in double.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/geometry/loss.h"
#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

constexpr int64_t kLineBlock = 64;

// Calls f(o, i0, width) for every (outer index, block of inner indices), in parallel.
template <typename F>
void for_each_line_block(const LineGeometry& geo, F&& f) {
  int64_t blocks = (geo.inner + kLineBlock - 1) / kLineBlock;
  int64_t items = geo.outer * blocks;
  int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(geo.dim * std::min(geo.inner, kLineBlock), 1));
  parallel_for(items, grain, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      int64_t o = item / blocks, i0 = (item % blocks) * kLineBlock;
      f(o, i0, std::min(kLineBlock, geo.inner - i0));
    }
  });
}

// Per line of the block: mx[j] = max_d x, lse[j] = mx[j] + log(sum_d exp(x - mx[j])).
// `base` points at x[o, 0, i0]; consecutive d are geo.inner apart.
template <typename T>
void block_logsumexp(const T* base, const LineGeometry& geo, int64_t width, double* lse) {
  T mx[kLineBlock];
  double sum[kLineBlock];
  for (int64_t j = 0; j < width; ++j) { mx[j] = base[j]; sum[j] = 0; }
  for (int64_t d = 1; d < geo.dim; ++d) {
    const T* row = base + d * geo.inner;
    for (int64_t j = 0; j < width; ++j) mx[j] = std::max(mx[j], row[j]);
  }
  for (int64_t d = 0; d < geo.dim; ++d) {
    const T* row = base + d * geo.inner;
    for (int64_t j = 0; j < width; ++j) sum[j] += std::exp(row[j] - mx[j]);
  }
  for (int64_t j = 0; j < width; ++j) lse[j] = mx[j] + std::log(sum[j]);
}

// y = softmax(x) or log_softmax(x) along the middle dim.
template <typename T>
void softmax_forward(const T* x, T* y, const LineGeometry& geo, bool log) {
  if (geo.dim == 0) return;
  for_each_line_block(geo, [&](int64_t o, int64_t i0, int64_t width) {
    int64_t offset = o * geo.dim * geo.inner + i0;
    double lse[kLineBlock];
    block_logsumexp(x + offset, geo, width, lse);
    for (int64_t d = 0; d < geo.dim; ++d) {
      const T* in = x + offset + d * geo.inner;
      T* out = y + offset + d * geo.inner;
      if (log)
        for (int64_t j = 0; j < width; ++j) out[j] = static_cast<T>(in[j] - lse[j]);
      else
        for (int64_t j = 0; j < width; ++j) out[j] = static_cast<T>(std::exp(in[j] - lse[j]));
    }
  });
}

// From the saved output y: softmax  dx = y * (dy - sum_d dy*y);
//                          log_softmax  dx = dy - exp(y) * sum_d dy.
template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, const LineGeometry& geo, bool log) {
  for_each_line_block(geo, [&](int64_t o, int64_t i0, int64_t width) {
    int64_t offset = o * geo.dim * geo.inner + i0;
    double dot[kLineBlock] = {};
    for (int64_t d = 0; d < geo.dim; ++d) {
      const T* py = y + offset + d * geo.inner;
      const T* pg = dy + offset + d * geo.inner;
      if (log)
        for (int64_t j = 0; j < width; ++j) dot[j] += pg[j];
      else
        for (int64_t j = 0; j < width; ++j) dot[j] += static_cast<double>(pg[j]) * py[j];
    }
    for (int64_t d = 0; d < geo.dim; ++d) {
      int64_t at = offset + d * geo.inner;
      if (log)
        for (int64_t j = 0; j < width; ++j) dx[at + j] = static_cast<T>(dy[at + j] - std::exp(y[at + j]) * dot[j]);
      else
        for (int64_t j = 0; j < width; ++j) dx[at + j] = static_cast<T>(y[at + j] * (dy[at + j] - dot[j]));
    }
  });
}

// Index of the first target that is neither in [0, classes) nor ignore_index; -1 if none.
inline int64_t cross_entropy_find_bad_target(const int32_t* target, int64_t n, int64_t classes,
                                             int64_t ignore_index) {
  for (int64_t i = 0; i < n; ++i)
    if (target[i] != ignore_index && (target[i] < 0 || target[i] >= classes)) return i;
  return -1;
}

// The twin of cuda::cross_entropy_check_targets: the first bad target and the count of the
// others that are not ignore_index.
inline void cross_entropy_check_targets(const int32_t* target, int64_t n, int64_t classes, int64_t ignore_index,
                                        TargetCheck* result) {
  result->first_bad = cross_entropy_find_bad_target(target, n, classes, ignore_index);
  result->counted = 0;
  for (int64_t p = 0; p < n; ++p) result->counted += target[p] != ignore_index;
}

// Logits [N, K, S] (geo = {N, K, S}), target [N, S] (validated). For each position p = n*S + s:
// lse[p] = logsumexp_k logits[n, k, s] (saved for backward), loss[p] = lse[p] - logits[n, t, s],
// or 0 where t == ignore_index.
template <typename T>
void cross_entropy_forward(const T* logits, const int32_t* target, const LineGeometry& geo, int64_t ignore_index,
                           double* lse, double* loss) {
  if (geo.dim == 0) return;
  for_each_line_block(geo, [&](int64_t o, int64_t i0, int64_t width) {
    const T* base = logits + o * geo.dim * geo.inner + i0;
    int64_t p0 = o * geo.inner + i0;
    block_logsumexp(base, geo, width, lse + p0);
    for (int64_t j = 0; j < width; ++j) {
      int32_t t = target[p0 + j];
      loss[p0 + j] = t == ignore_index ? 0.0 : lse[p0 + j] - base[t * geo.inner + j];
    }
  });
}

// d loss / d logits = coef[p] * (softmax - onehot(t)), 0 at ignored positions, with
// coef[p] = scale * (grad_per_position ? grad[p] : grad[0]).
template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* target, const double* lse, const LineGeometry& geo,
                            int64_t ignore_index, const T* grad, bool grad_per_position, double scale, T* dx) {
  for_each_line_block(geo, [&](int64_t o, int64_t i0, int64_t width) {
    int64_t offset = o * geo.dim * geo.inner + i0;
    int64_t p0 = o * geo.inner + i0;
    double coef[kLineBlock];
    for (int64_t j = 0; j < width; ++j)
      coef[j] = target[p0 + j] == ignore_index ? 0.0 : scale * (grad_per_position ? grad[p0 + j] : grad[0]);
    for (int64_t d = 0; d < geo.dim; ++d) {
      int64_t at = offset + d * geo.inner;
      for (int64_t j = 0; j < width; ++j) {
        double onehot = target[p0 + j] == d ? 1.0 : 0.0;
        dx[at + j] = coef[j] == 0.0 ? T(0) : static_cast<T>(coef[j] * (std::exp(logits[at + j] - lse[p0 + j]) - onehot));
      }
    }
  });
}

// out[0] = (sum of the per-position losses, in order) / divisor: the reductions sum (divisor 1)
// and mean (divisor = the positions counted, NaN when none is).
template <typename T>
void cross_entropy_total(const double* loss, int64_t positions, double divisor, T* out) {
  double total = 0;
  for (int64_t p = 0; p < positions; ++p) total += loss[p];
  out[0] = static_cast<T>(total / divisor);
}

// Sum of v[0..n) in double, in fixed blocks combined in order: the same bits whatever the
// thread count.
template <typename F>
double deterministic_sum(int64_t n, F&& value) {
  constexpr int64_t kBlock = 8192;
  int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks, 0.0);
  parallel_for(blocks, 4, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      double s = 0;
      for (int64_t i = b * kBlock, e = std::min(n, (b + 1) * kBlock); i < e; ++i) s += value(i);
      partial[b] = s;
    }
  });
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

// Elementwise loss (reduction none).
template <typename T>
void pointwise_loss(const T* x, const T* t, T* out, int64_t n, PointwiseLoss kind) {
  parallel_for(n, 32768, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = pointwise_loss_value(kind, x[i] - t[i]);
  });
}

// out[0] = (sum of the elementwise loss) / divisor: the reductions sum (divisor 1) and mean
// (divisor n, NaN for an empty input).
template <typename T>
void pointwise_loss_sum(const T* x, const T* t, T* out, int64_t n, PointwiseLoss kind, double divisor) {
  double total =
      deterministic_sum(n, [&](int64_t i) { return static_cast<double>(pointwise_loss_value(kind, x[i] - t[i])); });
  out[0] = static_cast<T>(total / divisor);
}

// dx = pointwise_loss_grad(x - t, grad_per_element ? grad[i] : grad[0], scale), dt = -dx
// (either may be null; base/geometry/loss.h).
template <typename T>
void pointwise_loss_backward(const T* x, const T* t, const T* grad, bool grad_per_element, double scale, T* dx,
                             T* dt, int64_t n, PointwiseLoss kind) {
  parallel_for(n, 32768, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T d = pointwise_loss_grad(kind, T(x[i] - t[i]), grad_per_element ? grad[i] : grad[0], scale);
      if (dx) dx[i] = d;
      if (dt) dt[i] = -d;
    }
  });
}

}  // namespace mmfuse::cpu
