// The geometry of modality-aware batch norm, x seen as [M*N, C, S], and its per-group and
// per-element formulas (statistics, running update, normalise + affine, the input gradient,
// dropout).
// Shared by the CPU kernels (core/cpu/norm.h) and their CUDA twins, which take the same arguments
// and call these functions: plain structs, index arithmetic and host-device formulas, nothing
// of Tensor, OpenMP or CUDA. The namespace stays mmfuse::cpu, where the CPU kernels have always
// defined these names.
#pragma once
#include <cmath>
#include <cstdint>

#include "base/philox.h"  // MMF_HD, the dropout stream

namespace mmfuse::cpu {

struct BatchNormGeometry {
  int64_t modalities = 1;
  int64_t batch_per_modality = 0;  // N
  int64_t channels = 0;            // C
  int64_t spatial = 1;             // S
  int64_t groups() const { return modalities * channels; }
  int64_t count() const { return batch_per_modality * spatial; }  // elements per group
  // Offset of the run of S elements for (group g, sample n within its modality).
  int64_t run_offset(int64_t g, int64_t n) const {
    int64_t m = g / channels, c = g % channels;
    return ((m * batch_per_modality + n) * channels + c) * spatial;
  }
};

// Mean and biased variance of a group of `count` > 0 values from its sums s1 = sum (x - shift)
// and s2 = sum (x - shift)^2 (shifted by the group's first value, so that a large common
// offset does not cancel the variance away).
MMF_HD void bn_moments(double shift, double s1, double s2, int64_t count, double& mean, double& var) {
  double m1 = s1 / count;
  mean = shift + m1;
  double v = s2 / count - m1 * m1;
  var = 0.0 < v ? v : 0.0;
}

// The per-element terms of the two per-group reductions, added to (s1, s2): the statistics'
// x - shift and its square; the backward's dy and dy * (x - mean).
template <typename T>
MMF_HD void bn_add_moment_terms(double shift, T x, double& s1, double& s2) {
  double d = static_cast<double>(x) - shift;
  s1 += d;
  s2 += d * d;
}
template <typename T>
MMF_HD void bn_add_grad_terms(double mean, T dy, T x, double& s1, double& s2) {
  double d = static_cast<double>(dy);
  s1 += d;
  s2 += d * (static_cast<double>(x) - mean);
}

MMF_HD double bn_invstd(double var, double eps) {
#ifdef __CUDA_ARCH__
  return 1.0 / ::sqrt(var + eps);
#else
  return 1.0 / std::sqrt(var + eps);
#endif
}

// The unbiased variance's factor n / (n - 1) (1 for a single value).
MMF_HD double bn_unbias(int64_t count) {
  return count > 1 ? static_cast<double>(count) / static_cast<double>(count - 1) : 1.0;
}

// running = (1 - momentum) * running + momentum * batch * unbias (unbias = 1 for the mean,
// bn_unbias(count) for the variance).
template <typename T>
MMF_HD T bn_running(T running, double batch, double momentum, double unbias) {
  return static_cast<T>((1 - momentum) * static_cast<double>(running) + momentum * batch * unbias);
}

// Normalise + affine of group g as y = x * a + b: a = gamma * invstd, b = beta - mean * a
// (weight and bias may be null: gamma 1, beta 0).
struct BnAffine {
  double a, b;
};
template <typename T>
MMF_HD BnAffine bn_affine(int64_t g, const double* mean, const double* invstd, const T* weight, const T* bias) {
  double a = invstd[g] * (weight ? static_cast<double>(weight[g]) : 1.0);
  return {a, (bias ? static_cast<double>(bias[g]) : 0.0) - mean[g] * a};
}
template <typename T>
MMF_HD T bn_apply(T x, const BnAffine& k) {
  return static_cast<T>(static_cast<double>(x) * k.a + k.b);
}

// The input gradient of group g. With batch statistics (the closed form through mean and
// variance): dx = k * (dy - sum_dy/n - (x - mean) * invstd^2 * sum_dy_xmu/n), k = gamma *
// invstd; with fixed (running) statistics the per-channel affine dx = k * dy, and the sums are
// not read.
struct BnInputGrad {
  double k, mean_dy, proj, mu;
  bool batch_stats;
};
template <typename T>
MMF_HD BnInputGrad bn_input_grad(int64_t g, const double* mean, const double* invstd, const T* weight,
                                 const double* sum_dy, const double* sum_dy_xmu, bool batch_stats, double inv_n) {
  double k = invstd[g] * (weight ? static_cast<double>(weight[g]) : 1.0);
  if (!batch_stats) return {k, 0, 0, 0, false};
  return {k, sum_dy[g] * inv_n, sum_dy_xmu[g] * inv_n * invstd[g] * invstd[g], mean[g], true};
}
template <typename T>
MMF_HD T bn_input_grad_of(T dy, T x, const BnInputGrad& c) {
  double d = static_cast<double>(dy);
  if (!c.batch_stats) return static_cast<T>(d * c.k);
  return static_cast<T>(c.k * (d - c.mean_dy - (static_cast<double>(x) - c.mu) * c.proj));
}

// Inverted dropout: an element whose Philox word gives uniform >= p is kept and scaled by
// dropout_scale(p) = 1/(1-p) (0 for p = 1), the others are 0.
MMF_HD double dropout_scale(double p) { return p < 1 ? 1.0 / (1.0 - p) : 0.0; }
template <typename T>
MMF_HD T dropout_value(T x, uint32_t word, double p, double scale) {
  return philox::uniform(word) >= p ? static_cast<T>(static_cast<double>(x) * scale) : T(0);
}

}  // namespace mmfuse::cpu
