// matmul and linear: forward values by hand and against naive loops, errors, float32 against
// float64, and gradient checks.
#include <cmath>

#include "core/cpu/gemm.h"
#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::random_input;

namespace {

// C = A B by three loops over [batch, M, K] x [batch, K, N] (batch 0: a 2-D operand reused).
std::vector<double> naive_matmul(const Tensor& a, const Tensor& b) {
  auto av = a.to_vector<double>(), bv = b.to_vector<double>();
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  int64_t batch = a.dim() == 3 ? a.size(0) : b.dim() == 3 ? b.size(0) : 1;
  std::vector<double> c(batch * M * N, 0.0);
  for (int64_t i = 0; i < batch; ++i) {
    int64_t ao = a.dim() == 3 ? i * M * K : 0, bo = b.dim() == 3 ? i * K * N : 0;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) c[(i * M + m) * N + n] += av[ao + m * K + k] * bv[bo + k * N + n];
  }
  return c;
}

// One CHECK for the worst element: |got - want| <= tol * max(1, |want|).
void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  size_t worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double ratio = std::abs(got[i] - want[i]) / (tol * std::max(1.0, std::abs(want[i])));
    if (std::isnan(ratio)) ratio = HUGE_VAL;
    if (ratio > worst_ratio) worst = i, worst_ratio = ratio;
  }
  INFO("element " << worst << ": " << (got.empty() ? 0 : got[worst]) << " vs " << (want.empty() ? 0 : want[worst]));
  CHECK(worst_ratio <= 1);
}

}  // namespace

TEST_CASE("matmul 2-d by hand") {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<float>({7, 8, 9, 10, 11, 12}, {3, 2});
  Tensor c = matmul(a, b);
  CHECK(c.shape() == Shape{2, 2});
  CHECK(c.to_vector<float>() == std::vector<float>{58, 64, 139, 154});
}

TEST_CASE("matmul batched by hand, and 2-d operands broadcast over the batch") {
  // Batch 0 is the identity, batch 1 doubles.
  Tensor a = Tensor::from_vector<double>({1, 0, 0, 1, 2, 0, 0, 2}, {2, 2, 2});
  Tensor b = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  CHECK(matmul(a, b).to_vector<double>() == std::vector<double>{1, 2, 3, 4, 10, 12, 14, 16});
  Tensor m = Tensor::from_vector<double>({0, 1, 1, 0}, {2, 2});  // swaps rows / columns
  Tensor ab = matmul(a, m), ba = matmul(m, b);
  CHECK(ab.shape() == Shape{2, 2, 2});
  CHECK(ab.to_vector<double>() == std::vector<double>{0, 1, 1, 0, 0, 2, 2, 0});
  CHECK(ba.to_vector<double>() == std::vector<double>{3, 4, 1, 2, 7, 8, 5, 6});

  Generator gen(7);
  for (auto [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{5, 7}, {7, 3}}, {{3, 5, 7}, {3, 7, 1}},
                                                            {{3, 5, 7}, {7, 2}}, {{5, 7}, {3, 7, 4}},
                                                            // enough small products to run in parallel
                                                            {{16, 13, 17}, {16, 17, 11}}, {{13, 17}, {16, 17, 11}}}) {
    Tensor x = Tensor::randn(sa, gen, 0, 1, DType::f64), y = Tensor::randn(sb, gen, 0, 1, DType::f64);
    INFO(shape_str(sa) << " x " << shape_str(sb));
    check_close(matmul(x, y).to_vector<double>(), naive_matmul(x, y));
  }
}

TEST_CASE("matmul with empty sizes") {
  Tensor a = Tensor::ones({3, 0}, DType::f64), b = Tensor::ones({0, 2}, DType::f64);
  CHECK(matmul(a, b).to_vector<double>() == std::vector<double>(6, 0.0));
  CHECK(matmul(Tensor::ones({0, 4}), Tensor::ones({4, 2})).shape() == Shape{0, 2});
}

TEST_CASE("gemm_batched over an empty batch into a shared C leaves beta * C") {
  // The gradient of a [M, K] operand that matmul broadcasts over [0, K, N] is such a sum over
  // no batch item; cpu::gemm_batched once returned without writing C (stale memory).
  for (double beta : {0.0, 0.5, 1.0}) {
    std::vector<double> c(6, 7.0);
    cpu::gemm_batched<double>(false, true, 0, 3, 2, 4, 1.0, nullptr, 4, 0, nullptr, 4, 8, beta, c.data(), 2, 0);
    CHECK(c == std::vector<double>(6, 7.0 * beta));
  }
  Generator gen(5);
  Tensor a = random_input({3, 4}, gen), b = Tensor::ones({0, 4, 2}, DType::f64).set_requires_grad();
  sum(matmul(a, b)).backward();
  CHECK(a.grad().to_vector<double>() == std::vector<double>(12, 0.0));
}

TEST_CASE("matmul argument errors") {
  Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({4, 5});
  CHECK_THROWS_WITH_AS(matmul(a, b), "matmul: [2, 3] x [4, 5]: inner sizes 3 and 4 differ", OpError);
  CHECK_THROWS_WITH_AS(matmul(Tensor::ones({2, 2, 3}), Tensor::ones({3, 3, 1})),
                       "matmul: [2, 2, 3] x [3, 3, 1]: batch sizes 2 and 3 differ", OpError);
  CHECK_THROWS_WITH_AS(matmul(Tensor::ones({3}), Tensor::ones({3, 1})),
                       "matmul: expects 2-d or 3-d operands, got [3] x [3, 1]", OpError);
  CHECK_THROWS_AS(matmul(a, Tensor::ones({3, 2}, DType::f64)), OpError);
}

TEST_CASE("linear by hand") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, -1, 0, 1}, {2, 3});
  Tensor w = Tensor::from_vector<double>({1, 0, 0, 1, 1, 1}, {2, 3});
  Tensor b = Tensor::from_vector<double>({10, 20}, {2});
  CHECK(linear(x, w).to_vector<double>() == std::vector<double>{1, 6, -1, 0});
  CHECK(linear(x, w, b).to_vector<double>() == std::vector<double>{11, 26, 9, 20});
  // Leading dims are kept; a 1-d input is one row.
  Tensor y = linear(x.reshape({2, 1, 3}), w, b);
  CHECK(y.shape() == Shape{2, 1, 2});
  CHECK(y.to_vector<double>() == std::vector<double>{11, 26, 9, 20});
  Tensor v = linear(Tensor::from_vector<double>({1, 2, 3}, {3}), w, b);
  CHECK(v.shape() == Shape{2});
  CHECK(v.to_vector<double>() == std::vector<double>{11, 26});
}

TEST_CASE("linear argument errors") {
  Tensor x = Tensor::ones({4, 3}), w = Tensor::ones({5, 2});
  CHECK_THROWS_WITH_AS(linear(x, w), "linear: input [4, 3] has 3 features, weight [5, 2] expects 2", OpError);
  CHECK_THROWS_WITH_AS(linear(x, Tensor::ones({5, 3, 1})), "linear: weight must be 2-d [out, in], got [5, 3, 1]",
                       OpError);
  CHECK_THROWS_WITH_AS(linear(x, Tensor::ones({5, 3}), Tensor::ones({4})),
                       "linear: bias [4] does not match weight [5, 3] (expected [5])", OpError);
}

TEST_CASE("matmul and linear in float32 agree with float64") {
  Generator gen(11);
  Tensor a = Tensor::randn({3, 17, 33}, gen, 0, 1, DType::f64), b = Tensor::randn({33, 9}, gen, 0, 1, DType::f64);
  Tensor bias = Tensor::randn({17}, gen, 0, 1, DType::f64);
  auto rel_close = [](const Tensor& f32, const Tensor& f64) {
    auto x = f32.to_vector<double>(), y = f64.to_vector<double>();
    double scale = 0, err = 0;
    for (size_t i = 0; i < y.size(); ++i) scale = std::max(scale, std::abs(y[i])), err = std::max(err, std::abs(x[i] - y[i]));
    CHECK(err <= 1e-4 * scale);
  };
  rel_close(matmul(a.to(DType::f32), b.to(DType::f32)), matmul(a, b));
  Tensor w = Tensor::randn({17, 33}, gen, 0, 1, DType::f64);
  rel_close(linear(a.to(DType::f32), w.to(DType::f32), bias.to(DType::f32)), linear(a, w, bias));
}

TEST_CASE("linear skips the gradients nobody asked for") {
  Generator gen(12);
  Tensor x = Tensor::randn({3, 4}, gen, 0, 1, DType::f64);  // no grad
  Tensor w = random_input({2, 4}, gen), b = Tensor::zeros({2}, DType::f64);
  sum(linear(x, w, b)).backward();
  CHECK(!x.grad().defined());
  CHECK(!b.grad().defined());
  // dW[o, i] = sum over rows of x[:, i].
  auto xs = sum(x, {0}).to_vector<double>(), dw = w.grad().to_vector<double>();
  for (int64_t o = 0; o < 2; ++o)
    for (int64_t i = 0; i < 4; ++i) CHECK(dw[o * 4 + i] == doctest::Approx(xs[i]));
}

MMF_GRAD_TEST(matmul) {
  Generator gen(21);
  for (auto [sa, sb] : std::vector<std::pair<Shape, Shape>>{
           {{5, 7}, {7, 3}}, {{1, 3}, {3, 1}}, {{3, 5, 7}, {3, 7, 2}}, {{3, 5, 7}, {7, 3}}, {{5, 3}, {3, 3, 7}}}) {
    INFO(shape_str(sa) << " x " << shape_str(sb));
    CHECK_GRAD([](const TensorList& t) { return matmul(t[0], t[1]); }, {random_input(sa, gen), random_input(sb, gen)});
  }
  // One operand without grad.
  Tensor fixed = Tensor::randn({7, 3}, gen, 0, 1, DType::f64);
  CHECK_GRAD([](const TensorList& t) { return matmul(t[0], t[1]); }, {random_input({2, 5, 7}, gen), fixed});
}

MMF_GRAD_TEST(linear) {
  Generator gen(22);
  CHECK_GRAD([](const TensorList& t) { return linear(t[0], t[1], t[2]); },
             {random_input({5, 7}, gen), random_input({3, 7}, gen), random_input({3}, gen)});
  CHECK_GRAD([](const TensorList& t) { return linear(t[0], t[1]); },
             {random_input({2, 3, 5}, gen), random_input({7, 5}, gen)});
  CHECK_GRAD([](const TensorList& t) { return linear(t[0], t[1], t[2]); },
             {random_input({7}, gen), random_input({3, 7}, gen), random_input({3}, gen)});
  // Input without grad (the first layer of a net).
  Tensor x = Tensor::randn({3, 5}, gen, 0, 1, DType::f64);
  CHECK_GRAD([](const TensorList& t) { return linear(t[0], t[1], t[2]); },
             {x, random_input({3, 5}, gen), random_input({3}, gen)});
}
