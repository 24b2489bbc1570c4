// Elementwise ops: every unary op on odd and non-multiple-of-32 shapes, an unaligned view (the
// CUDA kernels' scalar path) and a million-element vector; binary ops on equal shapes and
// broadcast both ways. Gradient checks on the small shapes (at most 256 elements an input).
// Parity tolerances (docs/cuda.md): exact arithmetic agrees to the bit; libm functions (exp,
// log, tanh, sigmoid, pow, gelu) to a few float32 ulps; gradients of broadcast operands are
// sums (the rounding of the final cast).
#include "tests/op_cases/op_case.h"

namespace mmfuse::testing {

namespace {

constexpr double kExact = 0;
constexpr double kLibm = 2e-6;
constexpr double kSum = 1e-6;

// The first four (odd sizes, so that no kernel relies on multiples of anything) also check
// the gradient; the others are parity cases only.
std::vector<Shape> shapes() { return {{7}, {3, 5}, {2, 3, 5}, {1, 3, 1, 7}, {1}, {3, 37, 129}, {1000003}}; }
bool gradient_shape(const Shape& s) { return shape_numel(s) <= 105 && s != Shape{1}; }

struct Unary {
  const char* op;
  const char* what;
  Tensor (*fn)(const Tensor&);
  double low, high, tol;
  bool bench = false;  // a bench row on its million-element case
};

}  // namespace

OpTable elementwise_cases() {
  OpTable t{"elementwise", {}};
  const std::vector<Unary> unary = {
      {"relu", "relu", [](const Tensor& x) { return relu(x); }, -1, 1, kExact, true},
      {"relu", "leaky relu 0.1", [](const Tensor& x) { return relu(x, 0.1); }, -1, 1, kExact},
      {"sigmoid", "sigmoid", [](const Tensor& x) { return sigmoid(x); }, -4, 4, kLibm, true},
      {"tanh", "tanh", [](const Tensor& x) { return tanh(x); }, -3, 3, kLibm},
      {"exp", "exp", [](const Tensor& x) { return exp(x); }, -3, 3, kLibm, true},
      {"log", "log", [](const Tensor& x) { return log(x); }, 0.05, 4, kLibm},
      {"abs", "abs", [](const Tensor& x) { return abs(x); }, -1, 1, kExact},
      {"gelu", "gelu", [](const Tensor& x) { return gelu(x); }, -3, 3, kLibm, true},
      {"pow", "pow 2.5", [](const Tensor& x) { return pow(x, 2.5); }, 0.05, 3, kLibm},
      {"clamp", "clamp [-0.5, 0.25]", [](const Tensor& x) { return clamp(x, -0.5, 0.25); }, -1, 1, kExact},
      {"affine", "x * 1.5 - 0.25", [](const Tensor& x) { return affine(x, 1.5, -0.25); }, -1, 1, kLibm},
      {"affine", "x * 3 - 1.5 (operators)", [](const Tensor& x) { return x * 3.0 - 1.5; }, -1, 1, kLibm},
  };
  for (const Unary& u : unary) {
    auto fn = u.fn;
    for (const Shape& s : shapes()) {
      OpCase& c = t.add(u.op, std::string(u.what) + " " + shape_str(s), {in(s, u.low, u.high)},
                        [fn](const TensorList& x) { return fn(x[0]); });
      c.parity(u.tol);
      if (!gradient_shape(s)) c.parity_only();
      if (u.bench && s == Shape{1000003}) c.bench({{1 << 22}});
    }
    // A view 3 rows of 37 floats in: the CUDA kernels' scalar (unaligned) path.
    t.add(u.op, std::string(u.what) + " on an unaligned view", {in({9, 37}, u.low, u.high)},
          [fn](const TensorList& x) { return fn(x[0].narrow(3, 5)); })
        .parity(u.tol)
        .parity_only();
  }

  // Binary ops; `grad`: equal shapes whose gradient is checked too (the odd shapes, or [3, 5] only), and
  // the broadcast pair (of the last four) checked too.
  struct Binary {
    const char* op;
    Tensor (*fn)(const Tensor&, const Tensor&);
    bool all_odd_shapes;
    size_t broadcast_checked;
  };
  const std::vector<Binary> binary = {{"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, true, 9},
                                      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, false, 10},
                                      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, true, 11},
                                      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, false, 12}};
  // Broadcasting both ways.
  const std::vector<std::pair<Shape, Shape>> broadcast = {
      {{3, 37, 129}, {37, 1}}, {{3, 1, 129}, {37, 1}}, {{4, 5, 7, 9}, {1, 5, 1, 1}}, {{3, 37, 129}, {}},
      {{}, {1000003}},         {{1000003}, {1}},       {{2, 3, 5}, {3, 5}},          {{7, 1, 3}, {1, 5, 1}},
      {{1, 1}, {1}},           {{3, 1, 5}, {4, 1}},    {{2, 3, 5}, {3, 1}},          {{5}, {2, 3, 1}},
      {{2, 3, 5}, {1, 5}}};
  for (const Binary& b : binary) {
    auto fn = b.fn;
    auto call = [fn](const TensorList& x) { return fn(x[0], x[1]); };
    // The divisor kept away from 0 (both signs for the gradient check).
    for (const Shape& s : shapes()) {
      OpCase& c = t.add(b.op, "equal shapes " + shape_str(s), {in(s), in(s, 0.5, 2)}, call);
      c.parity(kExact, b.op == std::string("div") ? 1e-6 : kExact);
      if (!gradient_shape(s) || (!b.all_odd_shapes && s != Shape{3, 5})) c.parity_only();
      if (s == Shape{1000003} && b.op == std::string("add")) c.bench({{1 << 22}, {1 << 22}});
    }
    for (size_t i = 0; i < broadcast.size(); ++i) {
      const auto& [sa, sb] = broadcast[i];
      OpCase& c = t.add(b.op, "broadcast " + shape_str(sa) + " and " + shape_str(sb), {in(sa), in(sb, 0.5, 2)}, call);
      c.parity(kExact, kSum);
      if (i != b.broadcast_checked) c.parity_only();
    }
    t.add(b.op, "broadcast [2, 3, 5] and [1, 5], a negative operand", {in({2, 3, 5}), in({1, 5}, -2, -0.5)}, call)
        .parity(kExact, kSum)
        .runs = b.op == std::string("div") ? kGrad | kParity : kParity;
    if (b.op == std::string("add")) t.cases.back().bench({{4096, 1024}, {1024}});
  }

  t.add("tanh", "a chain tanh(relu(a * b + 0.5) * 2) - sigmoid(b) through autograd",
        {in({3, 37, 129}), in({37, 1})},
        [](const TensorList& x) { return tanh(relu(x[0] * x[1] + 0.5) * 2.0) - sigmoid(x[1]); })
      .parity(kLibm)
      .parity_only();
  return t;
}

}  // namespace mmfuse::testing
