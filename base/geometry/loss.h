// The geometry of softmax and cross entropy, [outer, dim, inner], the result of the target
// check, the kinds of pointwise loss with their formulas, and the per-line formulas of
// softmax, log_softmax and cross entropy (SoftmaxRules).
// Shared by the CPU kernels (core/cpu/loss.h) and their CUDA twins, which take the same arguments:
// plain structs and index arithmetic, nothing of Tensor, OpenMP or CUDA. The namespace stays
// mmfuse::cpu, where the CPU kernels have always defined these names.
#pragma once
#include <cmath>
#include <cstdint>

#include "base/philox.h"  // MMF_HD, MMF_HD_INLINE

namespace mmfuse::cpu {

struct LineGeometry {
  int64_t outer = 1;
  int64_t dim = 1;
  int64_t inner = 1;
};

enum class PointwiseLoss { l1, mse };

// What cross_entropy needs to know of its targets before it runs, from either device's check:
// how many are not ignore_index, and the first one outside [0, classes) that is not
// ignore_index (-1: none).
struct TargetCheck {
  int64_t counted = 0;
  int64_t first_bad = -1;
};

// The pointwise losses' formulas, for the CPU loops and the CUDA kernels alike. f(diff): |diff|
// (l1) or diff^2 (mse).
template <typename T>
MMF_HD T pointwise_loss_value(PointwiseLoss kind, T diff) {
#ifdef __CUDA_ARCH__
  return kind == PointwiseLoss::l1 ? abs(diff) : diff * diff;  // CUDA's overloads
#else
  return kind == PointwiseLoss::l1 ? std::abs(diff) : diff * diff;
#endif
}

// d/dx of scale * g * f(x - t): scale * g * f'(diff) in double, f' = sign (sign(0) = 0, as
// torch.sign) for l1 and 2 * diff for mse. d/dt is its negation.
template <typename T>
MMF_HD T pointwise_loss_grad(PointwiseLoss kind, T diff, T g, double scale) {
  T slope = kind == PointwiseLoss::l1 ? T((diff > T(0)) - (diff < T(0))) : T(2) * diff;
  return static_cast<T>(scale * static_cast<double>(g) * static_cast<double>(slope));
}

// The per-element formulas of softmax, log_softmax and cross entropy along a line of `dim`
// values, written once for the CPU loops (core/cpu/loss.h) and the CUDA kernels (cuda/loss.cu);
// each device keeps only its iteration (blocks of SIMD lanes on the CPU, a thread per line or
// per element on CUDA). Two things stay per device, as parameters:
// - Math, the exp and log: Math::exp(v) for v of the input's type T, and of C where C is
//   double; Math::log_sum(sum), the log of a line's sum of exponentials (a double >= 1),
//   returned as a double. The CPU's (cpu::FastMath<T>, core/cpu/fast_math.h) are the
//   vectorisable float forms and take the log in T; CUDA's are the exact expf / exp / log.
// - C, the working type of the outputs and gradients: T on the CPU (SIMD lanes of the input's
//   type), double on CUDA. A value goes to C, is computed there, and is stored as T.
// A line: mx = max x (max_step, from the first value on); sum = sum of exp_term(x, mx), in
// double; then
//   softmax      y = exp(x - mx) * (1 / sum)           (exp_term in C, inv_sum, softmax)
//   log_softmax  y = x - lse, lse = mx + log(sum)      (logsumexp, work, log_softmax)
//   backward     softmax:     dx = y * (dy - sum dy*y)   (softmax_dot, softmax_grad)
//                log_softmax: dx = dy - exp(y) * sum dy  (log_softmax_dot, log_softmax_grad)
//   cross entropy, position p with target t: loss = lse - x[t] (0 where t is ignore_index),
//                dx = coef * (exp(x - lse) - onehot(t)), coef = scale * dloss (0 where ignored:
//                the gradient is then exactly 0, whatever x).
// The sums themselves (in double, in the device's order) are the callers'.
template <typename C, class Math>
struct SoftmaxRules {
  // The running max: x where x > mx (NaN enters only as a line's first value, which the max
  // starts from; either way its log-sum-exp is NaN).
  template <typename T>
  MMF_HD_INLINE static T max_step(T mx, T x) {
    return x > mx ? x : mx;
  }
  // exp(x - mx), the difference and the exp in V: T for the terms of the sum, C for softmax's
  // output where it does not reuse them.
  template <typename V>
  MMF_HD_INLINE static V exp_term(V x, V mx) {
    return Math::exp(static_cast<V>(x - mx));
  }
  template <typename T>
  MMF_HD_INLINE static double logsumexp(T mx, double sum) {
    return static_cast<double>(mx) + Math::log_sum(sum);
  }
  // A line's double quantity (its log-sum-exp, backward's sum of dot terms) in C.
  MMF_HD_INLINE static C work(double v) { return static_cast<C>(v); }
  MMF_HD_INLINE static C inv_sum(double sum) { return static_cast<C>(1.0 / sum); }
  template <typename T>
  MMF_HD_INLINE static T softmax(C exp_term, C inv_sum) {
    return static_cast<T>(exp_term * inv_sum);
  }
  // lse: work(logsumexp(...)), converted once per line.
  template <typename T>
  MMF_HD_INLINE static T log_softmax(T x, C lse) {
    return static_cast<T>(static_cast<C>(x) - lse);
  }

  // Backward from the saved output y and dy; `total` is work(the line's sum of the dot terms).
  template <typename T>
  MMF_HD_INLINE static double softmax_dot(T dy, T y) {
    return static_cast<double>(dy) * static_cast<double>(y);
  }
  template <typename T>
  MMF_HD_INLINE static double log_softmax_dot(T dy) {
    return static_cast<double>(dy);
  }
  template <typename T>
  MMF_HD_INLINE static T softmax_grad(T y, T dy, C total) {
    return static_cast<T>(static_cast<C>(y) * (static_cast<C>(dy) - total));
  }
  template <typename T>
  MMF_HD_INLINE static T log_softmax_grad(T y, T dy, C total) {
    return static_cast<T>(static_cast<C>(dy) - static_cast<C>(Math::exp(y)) * total);
  }

  // Cross entropy at one position: at_class0 points at the line's class-0 value, classes
  // `stride` apart; x[t] is read only where t is not ignore_index.
  template <typename T>
  MMF_HD_INLINE static double cross_entropy_loss(const T* at_class0, int64_t stride, int32_t t, int64_t ignore_index,
                                                 double lse) {
    return t == ignore_index ? 0.0 : lse - static_cast<double>(at_class0[t * stride]);
  }
  // The position's factor: scale * dloss (the incoming gradient, one per position or one for
  // all), 0 where t is ignore_index.
  template <typename G>
  MMF_HD_INLINE static C cross_entropy_coef(int32_t t, int64_t ignore_index, double scale, G dloss) {
    return static_cast<C>(t == ignore_index ? 0.0 : scale * static_cast<double>(dloss));
  }
  // onehot enters as a select of 1 or 0: GCC does not vectorise the CPU loop when it converts
  // the bool to C instead (-fopt-info-vec-missed: "complicated access pattern").
  template <typename T>
  MMF_HD_INLINE static T cross_entropy_grad(C coef, T x, double lse, bool onehot) {
    T g = static_cast<T>(coef * (Math::exp(static_cast<C>(x - lse)) - (onehot ? C(1) : C(0))));
    return coef == C(0) ? T(0) : g;
  }
};

}  // namespace mmfuse::cpu
