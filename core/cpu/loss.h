// CPU loops of the softmax/loss family.
//
// softmax, log_softmax and cross_entropy see their input as [outer, dim, inner] (the reduced
// dim in the middle) and treat each of the outer * inner positions as one line of `dim` values.
// Two layouts, each walked so that the innermost loop reads contiguous memory and vectorises
// (checked with -fopt-info-vec, docs/ops.md):
// - inner > 1 (a feature map, [N, K, H*W]): a work item is one outer index and a block of up to
//   kLineBlock consecutive inner positions; every pass over `dim` runs across the block, one
//   SIMD lane per position;
// - inner == 1 (a classifier, [N, K]): a work item is a line; the passes run along it, its sums
//   in kSumLanes interleaved lanes (lane_sum).
// Per line: the max, the sum of exp(x - max) (numerically stable), then the output. The
// formulas are SoftmaxRules' (base/geometry/loss.h), shared with the CUDA kernels; these loops
// are only their iteration. Here they work in the input's type T (SoftmaxRules' C = T) with
// core/cpu/fast_math.h's exp and log (FastMath<T>): vectorisable float forms, libm's in double;
// the loops run as AVX2 code where the CPU has it (simd_range). Precision: each exponential is a float within 2 ulp;
// the sums over `dim` (and the dot products of backward) accumulate in double, so that a line's
// log-sum-exp carries a float's rounding (one log) whatever the number of classes, where a float
// sum would lose up to dim ulp; the per-line quantities are then used in the input's type.
// Nothing depends on how the lines are split between threads, nor on the vector width: results
// are the same bits for every thread count, with AVX2 or without.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/geometry/loss.h"
#include "core/cpu/fast_math.h"
#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

constexpr int64_t kLineBlock = 64;

// The shared formulas as the CPU runs them: in T, with the fast exp and log.
template <typename T>
using Rules = SoftmaxRules<T, FastMath<T>>;

// Calls f(o, i0, width) for every (outer index, block of inner indices), in parallel; each
// thread's range runs through simd_range (core/cpu/fast_math.h): AVX2 code where the CPU has
// it. f must be MMF_SIMD_INLINE, so that it and its helpers compile into that code.
template <typename F>
void for_each_line_block(const LineGeometry& geo, F&& f) {
  int64_t blocks = (geo.inner + kLineBlock - 1) / kLineBlock;
  int64_t items = geo.outer * blocks;
  int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(geo.dim * std::min(geo.inner, kLineBlock), 1));
  auto range = [&](int64_t b, int64_t e) MMF_SIMD_INLINE {
    for (int64_t item = b; item < e; ++item) {
      int64_t o = item / blocks, i0 = (item % blocks) * kLineBlock;
      f(o, i0, std::min(kLineBlock, geo.inner - i0));
    }
  };
  parallel_for(items, grain, [&](int64_t b, int64_t e) { simd_range(range, b, e); });
}

// Calls f(o) for every line of an inner == 1 geometry (x[o, 0..dim) contiguous), in parallel,
// as for_each_line_block.
template <typename F>
void for_each_line(const LineGeometry& geo, F&& f) {
  auto range = [&](int64_t b, int64_t e) MMF_SIMD_INLINE {
    for (int64_t o = b; o < e; ++o) f(o);
  };
  parallel_for(geo.outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(geo.dim, 1)),
               [&](int64_t b, int64_t e) { simd_range(range, b, e); });
}

// sum_k value(k) for k in [0, n), in double, as kSumLanes interleaved partial sums (k mod
// kSumLanes) combined in a fixed order: SIMD over the lanes at any vector width, and the same
// bits whatever that width (AVX2 or the baseline).
constexpr int64_t kSumLanes = 8;
template <typename F>
MMF_SIMD_INLINE inline double lane_sum(int64_t n, F&& value) {
  double part[kSumLanes] = {};
  int64_t k = 0;
  for (; k + kSumLanes <= n; k += kSumLanes)
#pragma GCC unroll 1  // left a loop, the vectoriser takes it (unrolled, GCC leaves it scalar)
    for (int64_t l = 0; l < kSumLanes; ++l) part[l] += value(k + l);
  for (int64_t l = 0; k + l < n; ++l) part[l] += value(k + l);
  double total = 0;
  for (int64_t l = 0; l < kSumLanes; ++l) total += part[l];
  return total;
}

// max_k line[k] for n >= 1, in kSumLanes lanes as lane_sum (a max is exact in any order; NaN
// propagates only from line[0], as the block layout's running max).
template <typename T>
MMF_SIMD_INLINE inline T lane_max(const T* line, int64_t n) {
  T part[kSumLanes];
  for (int64_t l = 0; l < kSumLanes; ++l) part[l] = line[0];
  int64_t k = 0;
  for (; k + kSumLanes <= n; k += kSumLanes)
#pragma GCC unroll 1
    for (int64_t l = 0; l < kSumLanes; ++l) part[l] = Rules<T>::max_step(part[l], line[k + l]);
  for (; k < n; ++k) part[0] = Rules<T>::max_step(part[0], line[k]);
  T mx = part[0];
  for (int64_t l = 1; l < kSumLanes; ++l) mx = Rules<T>::max_step(mx, part[l]);
  return mx;
}

// Per line j of the block at `base` (x[o, 0, i0]; consecutive d are geo.inner apart):
// mx[j] = max_d x and sum[j] = sum_d exp(x - mx[j]); with kStore, also exps[d, j] = exp(x - mx[j])
// (same strides as `base`; kStore: a template argument, so that the loops carry no branch).
template <bool kStore, typename T>
MMF_SIMD_INLINE inline void block_max_sum(const T* base, const LineGeometry& geo, int64_t width, T* mx, double* sum, T* exps) {
  for (int64_t j = 0; j < width; ++j) mx[j] = base[j], sum[j] = 0;
  for (int64_t d = 1; d < geo.dim; ++d) {
    const T* row = base + d * geo.inner;
    for (int64_t j = 0; j < width; ++j) mx[j] = Rules<T>::max_step(mx[j], row[j]);
  }
  for (int64_t d = 0; d < geo.dim; ++d) {
    const T* row = base + d * geo.inner;
    T* out = kStore ? exps + d * geo.inner : nullptr;
    for (int64_t j = 0; j < width; ++j) {
      T e = Rules<T>::exp_term(row[j], mx[j]);
      sum[j] += static_cast<double>(e);
      if constexpr (kStore) out[j] = e;
    }
  }
}

// The same for one contiguous line of n values; returns the max, sets `sum`.
template <bool kStore, typename T>
MMF_SIMD_INLINE inline T line_max_sum(const T* line, int64_t n, double& sum, T* exps) {
  T mx = lane_max(line, n);
  if constexpr (kStore) {
    for (int64_t k = 0; k < n; ++k) exps[k] = Rules<T>::exp_term(line[k], mx);
    sum = lane_sum(n, [&](int64_t k) MMF_SIMD_INLINE { return static_cast<double>(exps[k]); });
  } else {
    sum = lane_sum(n, [&](int64_t k) MMF_SIMD_INLINE { return static_cast<double>(Rules<T>::exp_term(line[k], mx)); });
  }
  return mx;
}

// y = softmax(x) or log_softmax(x) along the middle dim. softmax keeps the exponentials of the
// max/sum pass and scales them by 1 / sum (one exp per element); log_softmax is x - logsumexp.
template <typename T>
void softmax_forward(const T* x, T* y, const LineGeometry& geo, bool log) {
  using R = Rules<T>;
  if (geo.dim == 0) return;
  if (geo.inner == 1) {
    for_each_line(geo, [&](int64_t o) MMF_SIMD_INLINE {
      const T* in = x + o * geo.dim;
      T* out = y + o * geo.dim;
      double sum;
      T mx = log ? line_max_sum<false>(in, geo.dim, sum, out) : line_max_sum<true>(in, geo.dim, sum, out);
      if (log) {
        T lse = R::work(R::logsumexp(mx, sum));
        for (int64_t k = 0; k < geo.dim; ++k) out[k] = R::log_softmax(in[k], lse);
      } else {
        T inv = R::inv_sum(sum);
        for (int64_t k = 0; k < geo.dim; ++k) out[k] = R::template softmax<T>(out[k], inv);
      }
    });
    return;
  }
  for_each_line_block(geo, [&](int64_t o, int64_t i0, int64_t width) MMF_SIMD_INLINE {
    int64_t offset = o * geo.dim * geo.inner + i0;
    T mx[kLineBlock], scale[kLineBlock];
    double sum[kLineBlock];
    if (log) block_max_sum<false>(x + offset, geo, width, mx, sum, y + offset);
    else block_max_sum<true>(x + offset, geo, width, mx, sum, y + offset);
    if (log)
      for (int64_t j = 0; j < width; ++j) scale[j] = R::work(R::logsumexp(mx[j], sum[j]));
    else
      for (int64_t j = 0; j < width; ++j) scale[j] = R::inv_sum(sum[j]);
    for (int64_t d = 0; d < geo.dim; ++d) {
      const T* in = x + offset + d * geo.inner;
      T* out = y + offset + d * geo.inner;
      if (log)
        for (int64_t j = 0; j < width; ++j) out[j] = R::log_softmax(in[j], scale[j]);
      else
        for (int64_t j = 0; j < width; ++j) out[j] = R::template softmax<T>(out[j], scale[j]);
    }
  });
}

// From the saved output y: softmax  dx = y * (dy - sum_d dy*y);
//                          log_softmax  dx = dy - exp(y) * sum_d dy.
template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, const LineGeometry& geo, bool log) {
  using R = Rules<T>;
  if (geo.dim == 0) return;
  if (geo.inner == 1) {
    for_each_line(geo, [&](int64_t o) MMF_SIMD_INLINE {
      const T *py = y + o * geo.dim, *pg = dy + o * geo.dim;
      T* out = dx + o * geo.dim;
      if (log) {
        T total = R::work(lane_sum(geo.dim, [&](int64_t k) MMF_SIMD_INLINE { return R::log_softmax_dot(pg[k]); }));
        for (int64_t k = 0; k < geo.dim; ++k) out[k] = R::log_softmax_grad(py[k], pg[k], total);
      } else {
        T total = R::work(lane_sum(geo.dim, [&](int64_t k) MMF_SIMD_INLINE { return R::softmax_dot(pg[k], py[k]); }));
        for (int64_t k = 0; k < geo.dim; ++k) out[k] = R::softmax_grad(py[k], pg[k], total);
      }
    });
    return;
  }
  for_each_line_block(geo, [&](int64_t o, int64_t i0, int64_t width) MMF_SIMD_INLINE {
    int64_t offset = o * geo.dim * geo.inner + i0;
    double dot[kLineBlock] = {};
    for (int64_t d = 0; d < geo.dim; ++d) {
      const T* py = y + offset + d * geo.inner;
      const T* pg = dy + offset + d * geo.inner;
      if (log)
        for (int64_t j = 0; j < width; ++j) dot[j] += R::log_softmax_dot(pg[j]);
      else
        for (int64_t j = 0; j < width; ++j) dot[j] += R::softmax_dot(pg[j], py[j]);
    }
    T total[kLineBlock];
    for (int64_t j = 0; j < width; ++j) total[j] = R::work(dot[j]);
    for (int64_t d = 0; d < geo.dim; ++d) {
      const T* py = y + offset + d * geo.inner;
      const T* pg = dy + offset + d * geo.inner;
      T* out = dx + offset + d * geo.inner;
      if (log)
        for (int64_t j = 0; j < width; ++j) out[j] = R::log_softmax_grad(py[j], pg[j], total[j]);
      else
        for (int64_t j = 0; j < width; ++j) out[j] = R::softmax_grad(py[j], pg[j], total[j]);
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
  using R = Rules<T>;
  if (geo.dim == 0) return;
  auto position_loss = [&](int64_t p, const T* at_class0) MMF_SIMD_INLINE {
    loss[p] = R::cross_entropy_loss(at_class0, geo.inner, target[p], ignore_index, lse[p]);
  };
  if (geo.inner == 1) {
    for_each_line(geo, [&](int64_t o) MMF_SIMD_INLINE {
      const T* line = logits + o * geo.dim;
      double sum;
      T mx = line_max_sum<false, T>(line, geo.dim, sum, nullptr);
      lse[o] = R::logsumexp(mx, sum);
      position_loss(o, line);
    });
    return;
  }
  for_each_line_block(geo, [&](int64_t o, int64_t i0, int64_t width) MMF_SIMD_INLINE {
    const T* base = logits + o * geo.dim * geo.inner + i0;
    int64_t p0 = o * geo.inner + i0;
    T mx[kLineBlock];
    double sum[kLineBlock];
    block_max_sum<false, T>(base, geo, width, mx, sum, nullptr);
    for (int64_t j = 0; j < width; ++j) lse[p0 + j] = R::logsumexp(mx[j], sum[j]);
    for (int64_t j = 0; j < width; ++j) position_loss(p0 + j, base + j);
  });
}

// d loss / d logits = coef[p] * (softmax - onehot(t)), 0 at ignored positions, with
// coef[p] = scale * (grad_per_position ? grad[p] : grad[0]); softmax = exp(logits - lse).
template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* target, const double* lse, const LineGeometry& geo,
                            int64_t ignore_index, const T* grad, bool grad_per_position, double scale, T* dx) {
  using R = Rules<T>;
  auto coef_at = [&](int64_t p) MMF_SIMD_INLINE {
    return R::cross_entropy_coef(target[p], ignore_index, scale, grad_per_position ? grad[p] : grad[0]);
  };
  if (geo.inner == 1) {
    for_each_line(geo, [&](int64_t o) MMF_SIMD_INLINE {
      const T* line = logits + o * geo.dim;
      T* out = dx + o * geo.dim;
      T coef = coef_at(o);
      if (coef == T(0)) {  // what cross_entropy_grad gives there, without the exps
        std::fill(out, out + geo.dim, T(0));
        return;
      }
      const double l = lse[o];
      for (int64_t k = 0; k < geo.dim; ++k) out[k] = R::cross_entropy_grad(coef, line[k], l, false);
      int32_t t = target[o];
      out[t] = R::cross_entropy_grad(coef, line[t], l, true);
    });
    return;
  }
  for_each_line_block(geo, [&](int64_t o, int64_t i0, int64_t width) MMF_SIMD_INLINE {
    int64_t offset = o * geo.dim * geo.inner + i0;
    int64_t p0 = o * geo.inner + i0;
    T coef[kLineBlock];
    double l[kLineBlock];
    int32_t t[kLineBlock];
    for (int64_t j = 0; j < width; ++j) coef[j] = coef_at(p0 + j), l[j] = lse[p0 + j], t[j] = target[p0 + j];
    for (int32_t d = 0; d < static_cast<int32_t>(geo.dim); ++d) {
      const T* in = logits + offset + d * geo.inner;
      T* out = dx + offset + d * geo.inner;
      for (int64_t j = 0; j < width; ++j) out[j] = R::cross_entropy_grad(coef[j], in[j], l[j], t[j] == d);
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
