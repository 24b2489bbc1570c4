// Elementwise ops: forward values by hand, broadcasting, and gradient checks.
#include <cmath>

#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::check_close;
using mmfuse::testing::random_input;

namespace {
// Random shapes with odd sizes, so that no kernel relies on multiples of anything.
std::vector<Shape> odd_shapes() { return {{7}, {3, 5}, {2, 3, 5}, {1, 3, 1, 7}}; }
}  // namespace

TEST_CASE("broadcast shapes follow PyTorch") {
  CHECK(broadcast_shape("t", {3, 1, 5}, {4, 1}) == Shape{3, 4, 5});
  CHECK(broadcast_shape("t", {}, {2, 3}) == Shape{2, 3});
  CHECK_THROWS_WITH_AS(broadcast_shape("add", {2, 3}, {4, 3}),
                       "add: shapes [2, 3] and [4, 3] cannot be broadcast", OpError);
}

TEST_CASE("binary ops by hand") {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<float>({10, 20, 30}, {3});
  CHECK(add(a, b).to_vector<float>() == std::vector<float>{11, 22, 33, 14, 25, 36});
  CHECK(sub(a, b).to_vector<float>() == std::vector<float>{-9, -18, -27, -6, -15, -24});
  Tensor c = Tensor::from_vector<float>({2, 4}, {2, 1});
  CHECK(mul(a, c).to_vector<float>() == std::vector<float>{2, 4, 6, 16, 20, 24});
  CHECK(div(a, c).to_vector<float>() == std::vector<float>{0.5f, 1, 1.5f, 1, 1.25f, 1.5f});
  CHECK((a * 2.0 + 1.0).to_vector<float>() == std::vector<float>{3, 5, 7, 9, 11, 13});
  CHECK_THROWS_AS(add(a, Tensor::ones({2, 3}, DType::f64)), OpError);
}

TEST_CASE("activations by hand") {
  Tensor x = Tensor::from_vector<double>({-2, -0.5, 0, 0.5, 2}, {5});
  CHECK(relu(x).to_vector<double>() == std::vector<double>{0, 0, 0, 0.5, 2});
  CHECK(relu(x, 0.1).to_vector<double>() == std::vector<double>{-0.2, -0.05, 0, 0.5, 2});
  CHECK(abs(x).to_vector<double>() == std::vector<double>{2, 0.5, 0, 0.5, 2});
  CHECK(clamp(x, -1, 1).to_vector<double>() == std::vector<double>{-1, -0.5, 0, 0.5, 1});
  auto s = sigmoid(x).to_vector<double>();
  CHECK(s[2] == doctest::Approx(0.5));
  CHECK(s[4] == doctest::Approx(1 / (1 + std::exp(-2.0))));
  CHECK(tanh(x).to_vector<double>()[4] == doctest::Approx(std::tanh(2.0)));
  CHECK(exp(x).to_vector<double>()[0] == doctest::Approx(std::exp(-2.0)));
  CHECK(log(exp(x)).to_vector<double>()[3] == doctest::Approx(0.5));
  CHECK(pow(x, 2).to_vector<double>() == std::vector<double>{4, 0.25, 0, 0.25, 4});
}

TEST_CASE("gelu is x * Phi(x), as torch.nn.functional.gelu") {
  // Phi(1) = 0.8413447460685429, Phi(0.5) = 0.6914624612740131 (the normal CDF); gelu(0) = 0.
  Tensor x = Tensor::from_vector<double>({-1, 0, 0.5, 1}, {4});
  check_close(gelu(x).to_vector<double>(), {-0.15865525393145707, 0, 0.34573123063700656, 0.8413447460685429},
              1e-15);
  // d/dx at 0 is Phi(0) = 1/2.
  Tensor z = Tensor::zeros({1}, DType::f64).set_requires_grad();
  gelu(z).backward(Tensor::ones({1}, DType::f64));
  CHECK(z.grad().item() == doctest::Approx(0.5).epsilon(1e-15));
}

TEST_CASE("relu gradient at 0 is the slope side, abs gradient at 0 is 0 (PyTorch)") {
  Tensor x = Tensor::zeros({1}, DType::f64).set_requires_grad();
  relu(x, 0.25).backward(Tensor::ones({1}, DType::f64));
  CHECK(x.grad().item() == 0.25);
  x.set_grad(Tensor());
  abs(x).backward(Tensor::ones({1}, DType::f64));
  CHECK(x.grad().item() == 0);
}

MMF_GRAD_TEST(add) {
  Generator gen(1);
  for (auto s : odd_shapes()) CHECK_GRAD([](const TensorList& t) { return add(t[0], t[1]); },
                                         {random_input(s, gen), random_input(s, gen)});
  // Broadcasting both ways.
  CHECK_GRAD([](const TensorList& t) { return add(t[0], t[1]); },
             {random_input({3, 1, 5}, gen), random_input({4, 1}, gen)});
}

MMF_GRAD_TEST(sub) {
  Generator gen(2);
  CHECK_GRAD([](const TensorList& t) { return sub(t[0], t[1]); },
             {random_input({2, 3, 5}, gen), random_input({3, 1}, gen)});
}

MMF_GRAD_TEST(mul) {
  Generator gen(3);
  for (auto s : odd_shapes()) CHECK_GRAD([](const TensorList& t) { return mul(t[0], t[1]); },
                                         {random_input(s, gen), random_input(s, gen)});
  CHECK_GRAD([](const TensorList& t) { return mul(t[0], t[1]); },
             {random_input({5}, gen), random_input({2, 3, 1}, gen)});
}

MMF_GRAD_TEST(div) {
  Generator gen(4);
  CHECK_GRAD([](const TensorList& t) { return div(t[0], t[1]); },
             {random_input({3, 5}, gen), random_input({3, 5}, gen, 0.5, 2)});
  CHECK_GRAD([](const TensorList& t) { return div(t[0], t[1]); },
             {random_input({2, 3, 5}, gen), random_input({1, 5}, gen, -2, -0.5)});
}

MMF_GRAD_TEST(affine) {
  Generator gen(5);
  CHECK_GRAD([](const TensorList& t) { return t[0] * 3.0 - 1.5; }, {random_input({4, 7}, gen)});
}

// One gradient test per unary op, on every odd shape; inputs kept inside each op's domain.
#define UNARY_GRAD_TEST(op, expr, low, high)                                        \
  MMF_GRAD_TEST(op) {                                                               \
    Generator gen(__LINE__);                                                        \
    for (auto s : odd_shapes())                                                     \
      CHECK_GRAD([](const TensorList& t) { return expr; }, {random_input(s, gen, low, high)}); \
  }
UNARY_GRAD_TEST(relu, relu(t[0], 0.1), -1, 1)
UNARY_GRAD_TEST(sigmoid, sigmoid(t[0]), -3, 3)
UNARY_GRAD_TEST(tanh, tanh(t[0]), -2, 2)
UNARY_GRAD_TEST(exp, exp(t[0]), -2, 2)
UNARY_GRAD_TEST(log, log(t[0]), 0.2, 3)
UNARY_GRAD_TEST(pow, pow(t[0], 2.5), 0.2, 2)
UNARY_GRAD_TEST(abs, abs(t[0]), -1, 1)
UNARY_GRAD_TEST(gelu, gelu(t[0]), -3, 3)
UNARY_GRAD_TEST(clamp, clamp(t[0], -0.5, 0.4), -1, 1)
