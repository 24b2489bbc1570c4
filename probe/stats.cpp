#include "probe/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"
#include "core/cpu/gemm.h"

namespace mmfuse::probe {

GaussianDistance gaussian_distance(double mean_a, double var_a, double mean_b, double var_b) {
  MMF_CHECK(var_a > 0 && var_b > 0, Error, "gaussian_distance: variances must be positive, got ", var_a, " and ",
            var_b);
  double d2 = (mean_a - mean_b) * (mean_a - mean_b);
  GaussianDistance g;
  // KL(a||b) = log(sd_b/sd_a) + (var_a + d2) / (2 var_b) - 1/2; the logs cancel in the sum.
  g.symmetric_kl = (var_a + d2) / (2 * var_b) + (var_b + d2) / (2 * var_a) - 1;
  double sd_a = std::sqrt(var_a), sd_b = std::sqrt(var_b);
  g.wasserstein = std::sqrt(d2 + (sd_a - sd_b) * (sd_a - sd_b));
  g.wasserstein_scaled = g.wasserstein / std::sqrt((var_a + var_b) / 2);
  return g;
}

namespace {

// Columns of m [n, c] minus their means.
std::vector<double> centred(const std::vector<double>& m, int64_t c, int64_t n) {
  std::vector<double> mean(static_cast<size_t>(c), 0.0), out(m);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) mean[j] += m[i * c + j];
  for (auto& v : mean) v /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) out[i * c + j] -= mean[j];
  return out;
}

// op(A) op(B)^T-style products as gemm takes them; the result is rows x cols.
std::vector<double> product(bool ta, bool tb, int64_t rows, int64_t cols, int64_t inner, const std::vector<double>& a,
                            int64_t lda, const std::vector<double>& b, int64_t ldb) {
  std::vector<double> c(static_cast<size_t>(rows * cols), 0.0);
  cpu::gemm<double>(ta, tb, rows, cols, inner, 1.0, a.data(), lda, b.data(), ldb, 0.0, c.data(), cols);
  return c;
}

double squared_norm(const std::vector<double>& m) {
  double s = 0;
  for (double v : m) s += v * v;
  return s;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

double linear_cka(const std::vector<double>& x, int64_t cx, const std::vector<double>& y, int64_t cy, int64_t n) {
  MMF_CHECK(n > 0 && cx > 0 && cy > 0 && static_cast<int64_t>(x.size()) == n * cx &&
                static_cast<int64_t>(y.size()) == n * cy,
            Error, "linear_cka: X has ", x.size(), " values for [", n, ", ", cx, "], Y ", y.size(), " for [", n,
            ", ", cy, "]");
  std::vector<double> xc = centred(x, cx, n), yc = centred(y, cy, n);
  double cross, xx, yy;
  if (std::max(cx, cy) <= n) {
    // ||Yc^T Xc||^2 / (||Xc^T Xc|| ||Yc^T Yc||), feature covariances.
    cross = squared_norm(product(true, false, cy, cx, n, yc, cy, xc, cx));
    xx = squared_norm(product(true, false, cx, cx, n, xc, cx, xc, cx));
    yy = squared_norm(product(true, false, cy, cy, n, yc, cy, yc, cy));
  } else {
    // The same through the Gram matrices: ||Yc^T Xc||^2 = <Xc Xc^T, Yc Yc^T>.
    std::vector<double> gx = product(false, true, n, n, cx, xc, cx, xc, cx);
    std::vector<double> gy = product(false, true, n, n, cy, yc, cy, yc, cy);
    cross = dot(gx, gy);
    xx = squared_norm(gx);
    yy = squared_norm(gy);
  }
  if (!(xx > 0) || !(yy > 0)) return std::numeric_limits<double>::quiet_NaN();
  return cross / std::sqrt(xx * yy);
}

void Moments::add(double v) {
  if (count == 0) min = max = v;
  min = std::min(min, v);
  max = std::max(max, v);
  ++count;
  double d = v - mean;
  mean += d / static_cast<double>(count);
  m2 += d * (v - mean);
}

double Moments::stddev() const { return count > 1 ? std::sqrt(m2 / static_cast<double>(count)) : 0.0; }

}  // namespace mmfuse::probe
