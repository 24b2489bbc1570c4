// CPU↔CUDA parity of the elementwise family, forward and backward, on odd and
// non-multiple-of-32 shapes, aligned (vector path) and unaligned (scalar path) pointers.
// Tolerances (docs/cuda.md): exact arithmetic agrees to the bit; libm functions (exp, log,
// tanh, sigmoid, pow) to a few ulps.
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

constexpr double kExact = 0;       // +, -, *, / (IEEE in both), relu, abs, clamp, affine
constexpr double kLibm = 2e-6;     // a few float32 ulps, as a norm-wise relative error

std::vector<Shape> parity_shapes() { return {{7}, {1}, {2, 3, 5}, {3, 37, 129}, {1000003}}; }

Tensor uniform(const Shape& s, Generator& gen, double low, double high) {
  return Tensor::rand(s, gen, low, high, DType::f32);
}

void check_unary(const char* name, const testing::TensorFn& f, double low, double high, double tol) {
  Generator gen(11);
  for (const Shape& s : parity_shapes()) {
    INFO(name << " on " << shape_str(s));
    CHECK_PARITY(f, {uniform(s, gen, low, high)}, tol);
  }
  // An unaligned view (offset of 3 rows of 37 floats): the scalar path.
  INFO(name << " on an unaligned view");
  CHECK_PARITY([&f](const TensorList& t) { return f({t[0].narrow(3, 5)}); }, {uniform({9, 37}, gen, low, high)}, tol);
}

}  // namespace

MMF_CUDA_TEST("parity: unary elementwise ops") {
  check_unary("relu", [](const TensorList& t) { return relu(t[0]); }, -1, 1, kExact);
  check_unary("leaky relu", [](const TensorList& t) { return relu(t[0], 0.1); }, -1, 1, kExact);
  check_unary("sigmoid", [](const TensorList& t) { return sigmoid(t[0]); }, -4, 4, kLibm);
  check_unary("tanh", [](const TensorList& t) { return tanh(t[0]); }, -3, 3, kLibm);
  check_unary("exp", [](const TensorList& t) { return exp(t[0]); }, -3, 3, kLibm);
  check_unary("log", [](const TensorList& t) { return log(t[0]); }, 0.05, 4, kLibm);
  check_unary("abs", [](const TensorList& t) { return abs(t[0]); }, -1, 1, kExact);
  check_unary("gelu", [](const TensorList& t) { return gelu(t[0]); }, -3, 3, kLibm);
  check_unary("pow", [](const TensorList& t) { return pow(t[0], 2.5); }, 0.05, 3, kLibm);
  check_unary("clamp", [](const TensorList& t) { return clamp(t[0], -0.5, 0.25); }, -1, 1, kExact);
  check_unary("affine", [](const TensorList& t) { return affine(t[0], 1.5, -0.25); }, -1, 1, kLibm);
}

MMF_CUDA_TEST("parity: binary ops, equal shapes") {
  Generator gen(12);
  for (const Shape& s : parity_shapes()) {
    INFO("shape " << shape_str(s));
    TensorList in = {uniform(s, gen, -1, 1), uniform(s, gen, 0.5, 2)};
    CHECK_PARITY([](const TensorList& t) { return add(t[0], t[1]); }, in, kExact);
    CHECK_PARITY([](const TensorList& t) { return sub(t[0], t[1]); }, in, kExact);
    CHECK_PARITY([](const TensorList& t) { return mul(t[0], t[1]); }, in, kExact);
    CHECK_PARITY([](const TensorList& t) { return div(t[0], t[1]); }, in, kExact, 1e-6);
  }
}

MMF_CUDA_TEST("parity: binary ops with broadcasting and scalar operands") {
  Generator gen(13);
  std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 37, 129}, {37, 1}},       {{3, 1, 129}, {37, 1}},   {{4, 5, 7, 9}, {1, 5, 1, 1}},
      {{3, 37, 129}, {}},            {{}, {1000003}},          {{1000003}, {1}},
      {{2, 3, 5}, {3, 5}},           {{7, 1, 3}, {1, 5, 1}},   {{1, 1}, {1}}};
  for (auto& [sa, sb] : cases) {
    INFO("shapes " << shape_str(sa) << " and " << shape_str(sb));
    TensorList in = {uniform(sa, gen, -1, 1), uniform(sb, gen, 0.5, 2)};
    // Gradients of broadcast operands are sums (reduce_sum): rounding of the final cast only.
    CHECK_PARITY([](const TensorList& t) { return add(t[0], t[1]); }, in, kExact, 1e-6);
    CHECK_PARITY([](const TensorList& t) { return sub(t[0], t[1]); }, in, kExact, 1e-6);
    CHECK_PARITY([](const TensorList& t) { return mul(t[0], t[1]); }, in, kExact, 1e-6);
    CHECK_PARITY([](const TensorList& t) { return div(t[0], t[1]); }, in, kExact, 1e-6);
  }
}

MMF_CUDA_TEST("parity: a chain of ops through autograd") {
  Generator gen(14);
  TensorList in = {uniform({3, 37, 129}, gen, -1, 1), uniform({37, 1}, gen, -1, 1)};
  CHECK_PARITY([](const TensorList& t) { return tanh(relu(t[0] * t[1] + 0.5) * 2.0) - sigmoid(t[1]); }, in, kLibm);
}

MMF_CUDA_TEST("float64 on the device matches the CPU too") {
  Generator gen(15);
  Tensor x = Tensor::rand({3, 37, 129}, gen, -2, 2, DType::f64);
  Tensor y = tanh(x).to(Device::cuda(0));
  Tensor z = tanh(x.to(Device::cuda(0)));
  CHECK(y.dtype() == DType::f64);
  CHECK(testing::relative_error(z, y) <= 1e-14);
}
