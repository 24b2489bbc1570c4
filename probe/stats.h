// The statistics of `mmfuse probe` (docs/probe.md), on plain arrays: each is pinned by tests on
// cases whose answer is known (tests/tools/test_probe.cpp).
#pragma once
#include <cstdint>
#include <vector>

namespace mmfuse::probe {

// Distances between two 1-D Gaussians N(mean_a, var_a) and N(mean_b, var_b): the normalising
// distributions of one channel under two modalities' BatchNorm statistics (var includes eps).
struct GaussianDistance {
  double symmetric_kl = 0;  // KL(a||b) + KL(b||a) (Jeffreys divergence), in nats
  double wasserstein = 0;   // W2 = sqrt((mean_a - mean_b)^2 + (sd_a - sd_b)^2), in the channel's units
  double wasserstein_scaled = 0;  // W2 / sqrt((var_a + var_b) / 2): scale-free
};
GaussianDistance gaussian_distance(double mean_a, double var_a, double mean_b, double var_b);

// Linear CKA (Kornblith et al., ICML 2019) between two representations of the same n rows,
// X [n, cx] and Y [n, cy], row-major: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with
// columns centred. 1 for Y = X (or any orthogonal transform and scaling of it), 0 for
// uncorrelated features; NaN when either side is constant. Computed in the cheaper of the two
// equal forms (feature covariances when c <= n, Gram matrices otherwise).
double linear_cka(const std::vector<double>& x, int64_t cx, const std::vector<double>& y, int64_t cy, int64_t n);

// Running mean and standard deviation (Welford) with min and max: the spread of gate values.
struct Moments {
  int64_t count = 0;
  double mean = 0, m2 = 0, min = 0, max = 0;
  void add(double v);
  double stddev() const;  // population; 0 for fewer than two values
};

}  // namespace mmfuse::probe
