// Softmax and losses: values by hand, cross entropy against a naive loop, ignore_index,
// reductions, errors, and gradient checks.
#include <cmath>
#include <limits>

#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::check_close;

namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

Tensor f64(const std::vector<double>& v, const Shape& shape) { return Tensor::from_vector<double>(v, shape); }
Tensor labels(const std::vector<int32_t>& v, const Shape& shape) { return Tensor::from_vector<int32_t>(v, shape); }

// Naive log_softmax along `dim` of a contiguous tensor, one line at a time.
std::vector<double> naive_log_softmax(const std::vector<double>& x, const Shape& shape, int64_t dim) {
  int64_t outer = 1, inner = 1, n = shape[dim];
  for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
  for (size_t d = dim + 1; d < shape.size(); ++d) inner *= shape[d];
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t k) { return (o * n + k) * inner + i; };
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) sum += std::exp(x[at(k)]);
      for (int64_t k = 0; k < n; ++k) y[at(k)] = x[at(k)] - std::log(sum);
    }
  return y;
}

}  // namespace

TEST_CASE("softmax and log_softmax by hand on dims 0, 1 and -1") {
  const double l3 = std::log(3.0), l4 = std::log(4.0);
  Tensor x = f64({0, 0, l4, l3, 0, 0}, {2, 3});
  // Rows: exp = (1, 1, 4) / 6 and (3, 1, 1) / 5.
  std::vector<double> rows{1.0 / 6, 1.0 / 6, 4.0 / 6, 3.0 / 5, 1.0 / 5, 1.0 / 5};
  check_close(values(softmax(x, 1)), rows);
  check_close(values(softmax(x, -1)), rows);
  // Columns: (1, 3) / 4, (1, 1) / 2, (4, 1) / 5.
  std::vector<double> cols{1.0 / 4, 1.0 / 2, 4.0 / 5, 3.0 / 4, 1.0 / 2, 1.0 / 5};
  check_close(values(softmax(x, 0)), cols);
  std::vector<double> log_cols;
  for (double c : cols) log_cols.push_back(std::log(c));
  check_close(values(log_softmax(x, 0)), log_cols);
  check_close(values(log_softmax(x, 1)), naive_log_softmax(values(x), {2, 3}, 1));
  // float32 path.
  auto yf = softmax(x.to(DType::f32), 1).to_vector<float>();
  CHECK(yf[2] == doctest::Approx(4.0 / 6));
}

TEST_CASE("softmax is numerically stable") {
  Tensor x = f64({1000, 1000, -1000, -1000, 0, 1000}, {2, 3});
  check_close(values(softmax(x, 1)), {0.5, 0.5, 0, 0, 0, 1});
  check_close(values(log_softmax(x, 1)), {-std::log(2.0), -std::log(2.0), -2000 - std::log(2.0), -2000, -1000, 0});
  auto yf = log_softmax(Tensor::from_vector<float>({100, 0}, {2}), 0).to_vector<float>();
  CHECK(yf[0] == 0);
  CHECK(yf[1] == -100);
}

TEST_CASE("log_softmax on a middle dim with many inner positions matches a naive loop") {
  // inner = 70 spans two of the kernel's blocks of inner positions.
  Generator gen(4);
  for (int64_t dim : {0, 1, 2}) {
    Tensor x = Tensor::rand({3, 5, 70}, gen, -4, 4, DType::f64);
    check_close(values(log_softmax(x, dim)), naive_log_softmax(values(x), x.shape(), dim));
    std::vector<double> expect = naive_log_softmax(values(x), x.shape(), dim);
    for (double& v : expect) v = std::exp(v);
    check_close(values(softmax(x, dim)), expect);
  }
  CHECK_THROWS_WITH_AS(softmax(Tensor::zeros({2, 3}), 2), "softmax: dim 2 out of range for a 2-d tensor", OpError);
  CHECK_THROWS_AS(log_softmax(labels({1}, {1}), 0), OpError);
}

TEST_CASE("cross_entropy by hand on a 2x3 case") {
  const double l2 = std::log(2.0), l3 = std::log(3.0), l5 = std::log(5.0);
  // Row 0: softmax (1, 1, 2) / 4, target 2: loss log 2. Row 1: softmax (3, 1, 1) / 5, target 1: loss log 5.
  Tensor logits = f64({0, 0, l2, l3, 0, 0}, {2, 3}).set_requires_grad();
  Tensor target = labels({2, 1}, {2});
  Tensor loss = cross_entropy(logits, target);
  CHECK(loss.shape() == Shape{});
  CHECK(loss.item() == doctest::Approx((l2 + l5) / 2));
  CHECK(cross_entropy(logits, target, -100, Reduction::sum).item() == doctest::Approx(l2 + l5));
  check_close(values(cross_entropy(logits, target, -100, Reduction::none)), {l2, l5});
  // d/dlogits = (softmax - onehot) / 2 for the mean.
  loss.backward();
  check_close(values(logits.grad()), {1.0 / 8, 1.0 / 8, -1.0 / 4, 3.0 / 10, -4.0 / 10, 1.0 / 10});
  // float32 path, and an unbatched [K] logits with a 0-d target.
  CHECK(cross_entropy(logits.detach().to(DType::f32), target).item() == doctest::Approx((l2 + l5) / 2));
  CHECK(cross_entropy(f64({l3, 0, 0}, {3}), labels({0}, {})).item() == doctest::Approx(l5 - l3));
}

TEST_CASE("cross_entropy on 4-d logits matches a naive loop, with ignore_index 255") {
  const int64_t N = 2, K = 4, H = 3, W = 5;
  Generator gen(8);
  Tensor logits = Tensor::rand({N, K, H, W}, gen, -3, 3, DType::f64).set_requires_grad();
  std::vector<int32_t> t(N * H * W);
  for (size_t i = 0; i < t.size(); ++i) t[i] = i % 7 == 3 ? 255 : static_cast<int32_t>(gen.below(K));
  Tensor target = labels(t, {N, H, W});
  std::vector<double> x = values(logits), expect(t.size(), 0.0);
  double total = 0;
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < H * W; ++s) {
      int64_t p = n * H * W + s;
      if (t[p] == 255) continue;
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += std::exp(x[(n * K + k) * H * W + s]);
      expect[p] = std::log(sum) - x[(n * K + t[p]) * H * W + s];
      total += expect[p];
      ++count;
    }
  Tensor none = cross_entropy(logits, target, 255, Reduction::none);
  CHECK(none.shape() == Shape{N, H, W});
  check_close(values(none), expect);
  CHECK(cross_entropy(logits, target, 255, Reduction::sum).item() == doctest::Approx(total));
  CHECK(cross_entropy(logits, target, 255).item() == doctest::Approx(total / count));

  // Gradient of the mean against a naive loop: (softmax - onehot) / count where not ignored.
  cross_entropy(logits, target, 255).backward();
  std::vector<double> g = values(logits.grad());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < H * W; ++s) {
      int64_t p = n * H * W + s;
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += std::exp(x[(n * K + k) * H * W + s]);
      for (int64_t k = 0; k < K; ++k) {
        int64_t i = (n * K + k) * H * W + s;
        double want = t[p] == 255 ? 0.0 : (std::exp(x[i]) / sum - (k == t[p])) / count;
        CHECK(g[i] == doctest::Approx(want).epsilon(1e-12).scale(1));
      }
    }
}

TEST_CASE("cross_entropy ignore_index -100 (default), and all ignored") {
  const double l2 = std::log(2.0), l5 = std::log(5.0), l3 = std::log(3.0);
  Tensor logits = f64({0, 0, l2, l3, 0, 0, 1, 2, 3}, {3, 3});
  Tensor target = labels({2, -100, -100}, {3});
  CHECK(cross_entropy(logits, target).item() == doctest::Approx(l2));  // one counted position
  check_close(values(cross_entropy(logits, target, -100, Reduction::none)), {l2, 0, 0});
  CHECK(cross_entropy(logits, labels({2, 1, 255}, {3}), 255, Reduction::sum).item() == doctest::Approx(l2 + l5));
  // An ignore_index inside [0, K) ignores that class.
  CHECK(cross_entropy(logits, labels({2, 1, 1}, {3}), 1).item() == doctest::Approx(l2));

  // Everything ignored: mean is NaN (as PyTorch), sum is 0, and the gradient is 0.
  Tensor lg = logits.detach().clone().set_requires_grad();
  Tensor all_ignored = labels({-100, -100, -100}, {3});
  Tensor mean = cross_entropy(lg, all_ignored);
  CHECK(std::isnan(mean.item()));
  CHECK(cross_entropy(lg, all_ignored, -100, Reduction::sum).item() == 0);
  mean.backward();
  check_close(values(lg.grad()), std::vector<double>(9, 0.0));
}

TEST_CASE("cross_entropy errors") {
  Tensor logits = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels({0, 3}, {2})),
                       "cross_entropy: target 3 at position [1] is outside [0, 3) and is not ignore_index -100 "
                       "(logits [2, 3])",
                       OpError);
  CHECK_THROWS_WITH_AS(cross_entropy(Tensor::zeros({2, 3, 2, 2}), labels({0, 1, 2, 0, 0, -1, 1, 1}, {2, 2, 2}), 255),
                       "cross_entropy: target -1 at position [1, 0, 1] is outside [0, 3) and is not ignore_index 255 "
                       "(logits [2, 3, 2, 2])",
                       OpError);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels({0, 1, 2}, {3})),
                       "cross_entropy: target [3] does not match logits [2, 3] (expected target [2])", OpError);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, Tensor::zeros({2})),
                       "cross_entropy: target must hold int32 class indices, got [2] float32 cpu", OpError);
}

TEST_CASE("l1_loss and mse_loss by hand") {
  Tensor input = f64({1, 2, 3, 4}, {2, 2}), target = f64({2, 2, 1, 8}, {2, 2});  // diff -1, 0, 2, -4
  check_close(values(l1_loss(input, target, Reduction::none)), {1, 0, 2, 4});
  CHECK(l1_loss(input, target).item() == 7.0 / 4);
  CHECK(l1_loss(input, target, Reduction::sum).item() == 7);
  check_close(values(mse_loss(input, target, Reduction::none)), {1, 0, 4, 16});
  CHECK(mse_loss(input, target).item() == 21.0 / 4);
  CHECK(mse_loss(input, target, Reduction::sum).item() == 21);
  CHECK(mse_loss(input.to(DType::f32), target.to(DType::f32)).to_vector<float>()[0] == 5.25f);
  CHECK(l1_loss(input, target).shape() == Shape{});

  // Gradients with respect to both arguments; the l1 slope at 0 is 0.
  Tensor x = input.detach().clone().set_requires_grad(), y = target.detach().clone().set_requires_grad();
  l1_loss(x, y).backward();
  check_close(values(x.grad()), {-0.25, 0, 0.25, -0.25});
  check_close(values(y.grad()), {0.25, 0, -0.25, 0.25});
  x.set_grad(Tensor());
  y.set_grad(Tensor());
  mse_loss(x, y).backward();
  check_close(values(x.grad()), {-0.5, 0, 1, -2});
  check_close(values(y.grad()), {0.5, 0, -1, 2});
  x.set_grad(Tensor());
  mse_loss(x, target, Reduction::none).backward(f64({1, 2, 3, 4}, {2, 2}));
  check_close(values(x.grad()), {-2, 0, 12, -32});

  CHECK(std::isnan(mse_loss(Tensor::zeros({0}), Tensor::zeros({0})).item()));
  CHECK_THROWS_WITH_AS(l1_loss(input, Tensor::zeros({4}, DType::f64)),
                       "l1_loss: input [2, 2] and target [4] must have the same shape", OpError);
  CHECK_THROWS_AS(mse_loss(input, target.to(DType::f32)), OpError);
}

TEST_CASE("mse_loss sum over many elements is deterministic and exact enough") {
  Generator gen(6);
  Tensor a = Tensor::rand({100003}, gen, -1, 1, DType::f64), b = Tensor::rand({100003}, gen, -1, 1, DType::f64);
  std::vector<double> av = values(a), bv = values(b);
  double naive = 0;
  for (size_t i = 0; i < av.size(); ++i) naive += (av[i] - bv[i]) * (av[i] - bv[i]);
  double got = mse_loss(a, b, Reduction::sum).item();
  CHECK(got == doctest::Approx(naive).epsilon(1e-12));
  CHECK(got == mse_loss(a, b, Reduction::sum).item());
}

// The finite-difference gradient checks of the family: its op-case table (tests/op_cases/loss.cpp).
TEST_CASE("gradcheck: the loss table") { CHECK(testing::check_gradient_cases(testing::loss_cases()) > 0); }
