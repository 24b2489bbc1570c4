// Elementwise ops: forward values by hand, broadcasting, and gradient checks.
#include <cmath>

#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::check_close;

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

// Every form the merged loops take (equal shapes, a scalar either side, a per-channel bias, a
// broadcast in the middle, both operands broadcast, strided runs), against index arithmetic;
// sizes past one thread's share too.
TEST_CASE("broadcast sub against index arithmetic, in every merged form") {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{16, 64, 2, 2}, {16, 64, 2, 2}}, {{300000}, {300000}}, {{3, 5}, {}},         {{}, {4, 7}},
      {{16, 64, 8, 8}, {1, 64, 1, 1}},  {{5, 1, 7}, {1, 6, 1}}, {{2, 3, 4, 5}, {3, 1, 5}}, {{7, 1}, {1, 9}},
      {{2, 3, 5}, {2, 1, 5}},           {{40, 1, 3000}, {1, 5, 3000}}, {{1}, {1}},       {{1, 1, 9}, {9, 1, 1}}};
  for (const auto& [sa, sb] : pairs) {
    INFO(shape_str(sa), " and ", shape_str(sb));
    Tensor a = Tensor::arange(0, static_cast<double>(shape_numel(sa)), 1, DType::f64).reshape(sa);
    Tensor b = Tensor::arange(0, static_cast<double>(shape_numel(sb)), 1, DType::f64).reshape(sb) * 0.001;
    Tensor out = sub(a, b);
    const Shape shape = broadcast_shape("t", sa, sb);
    REQUIRE(out.shape() == shape);
    const auto got = out.to_vector<double>();
    const int64_t nd = static_cast<int64_t>(shape.size());
    // The element of `in` (its dims aligned to the right of shape) at the output's index.
    auto element = [&](const Shape& in, const std::vector<int64_t>& index) {
      double offset = 0, stride = 1;
      for (int64_t d = static_cast<int64_t>(in.size()) - 1; d >= 0; --d) {
        int64_t i = in[d] == 1 ? 0 : index[d + nd - static_cast<int64_t>(in.size())];
        offset += static_cast<double>(i) * stride;
        stride *= static_cast<double>(in[d]);
      }
      return offset;
    };
    size_t wrong = 0;
    std::vector<int64_t> index(nd, 0);
    for (size_t k = 0; k < got.size(); ++k) {
      int64_t rem = static_cast<int64_t>(k);
      for (int64_t d = nd - 1; d >= 0; --d) {
        index[d] = rem % shape[d];
        rem /= shape[d];
      }
      if (got[k] != element(sa, index) - element(sb, index) * 0.001) ++wrong;
    }
    CHECK(wrong == 0);
  }
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

// The finite-difference gradient checks of the family: its op-case table (tests/op_cases/elementwise.cpp).
TEST_CASE("gradcheck: the elementwise table") { CHECK(testing::check_gradient_cases(testing::elementwise_cases()) > 0); }

// A unary op's backward writes into the incoming gradient when nothing else holds it
// (core/ops/elementwise.cpp, gradient_is_ours). add hands one gradient to both its inputs: the
// node that runs first must not overwrite what the other still reads, in either order.
TEST_CASE("unary backward in place only on a gradient nobody else holds") {
  for (bool relu_first : {true, false}) {
    CAPTURE(relu_first);
    Tensor a = Tensor::from_vector<float>({-1, 2, -3, 4}, {4}).set_requires_grad();
    Tensor b = Tensor::from_vector<float>({1, 1, 1, 1}, {4}).set_requires_grad();
    Tensor r, q;
    if (relu_first) {
      q = b * 3.0;  // created first: its node runs after relu's
      r = relu(a * 2.0);
    } else {
      r = relu(a * 2.0);
      q = b * 3.0;
    }
    // The product's backward makes a gradient nobody holds; add passes it to both nodes.
    Tensor s = (r + q) * 1.0;
    // A root gradient the caller keeps: it must come back unchanged.
    Tensor root = Tensor::from_vector<float>({10, 20, 30, 40}, {4});
    s.backward(root);
    CHECK(root.to_vector<float>() == std::vector<float>{10, 20, 30, 40});
    CHECK(a.grad().to_vector<float>() == std::vector<float>{0, 40, 0, 80});
    CHECK(b.grad().to_vector<float>() == std::vector<float>{30, 60, 90, 120});
  }
}
