// CPU↔CUDA parity of matmul (2-d, batched, broadcast 2-d operand on either side) and linear
// (with and without bias, 1-d to 3-d inputs) through cuBLAS, on odd and non-multiple-of-32
// sizes, in both matmul precisions. Tolerances (docs/cuda.md): fp32 products differ from
// OpenBLAS only by summation order (1e-5 relative); tf32 rounds the operands to a 10-bit
// mantissa (5e-3 relative, about 10x the expected error for inner sizes of a few hundred).
#include "cuda/precision.h"
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

constexpr double kFp32 = 1e-5;
constexpr double kTf32 = 5e-3;

// Restores the process-wide matmul precision when a test leaves (even by an exception).
struct MatmulPrecision {
  cuda::Precision saved = cuda::matmul_precision();
  explicit MatmulPrecision(cuda::Precision p) { cuda::set_matmul_precision(p); }
  ~MatmulPrecision() { cuda::set_matmul_precision(saved); }
};

void check_matmuls(double tol) {
  Generator gen(31);
  std::vector<std::pair<Shape, Shape>> cases = {
      {{7, 5}, {5, 3}},          {{1, 1}, {1, 1}},           {{33, 65}, {65, 17}},   {{129, 257}, {257, 31}},
      {{3, 7, 5}, {3, 5, 9}},    {{3, 7, 5}, {5, 9}},        {{7, 5}, {3, 5, 9}},    {{5, 33, 1}, {5, 1, 37}},
      {{2, 31, 127}, {127, 63}}, {{4, 0, 5}, {4, 5, 3}},     {{6, 0}, {0, 5}}};
  for (auto& [sa, sb] : cases) {
    INFO("matmul " << shape_str(sa) << " x " << shape_str(sb));
    TensorList in = {Tensor::rand(sa, gen, -1, 1, DType::f32), Tensor::rand(sb, gen, -1, 1, DType::f32)};
    CHECK_PARITY([](const TensorList& t) { return matmul(t[0], t[1]); }, in, tol);
  }
}

void check_linears(double tol) {
  Generator gen(32);
  struct Case { Shape x; int64_t out; bool bias; };
  std::vector<Case> cases = {{{5}, 3, true},          {{7, 5}, 3, true},       {{7, 5}, 3, false},
                             {{3, 7, 33}, 65, true},  {{129, 257}, 31, true},  {{2, 3, 5, 7}, 9, false}};
  for (const Case& c : cases) {
    INFO("linear " << shape_str(c.x) << " -> " << c.out << (c.bias ? " with bias" : ""));
    int64_t in_features = c.x.back();
    TensorList in = {Tensor::rand(c.x, gen, -1, 1, DType::f32), Tensor::rand({c.out, in_features}, gen, -1, 1, DType::f32)};
    if (c.bias) {
      in.push_back(Tensor::rand({c.out}, gen, -1, 1, DType::f32));
      CHECK_PARITY([](const TensorList& t) { return linear(t[0], t[1], t[2]); }, in, tol);
    } else {
      CHECK_PARITY([](const TensorList& t) { return linear(t[0], t[1]); }, in, tol);
    }
  }
}

}  // namespace

MMF_CUDA_TEST("parity: matmul, fp32") {
  MatmulPrecision p(cuda::Precision::fp32);
  check_matmuls(kFp32);
}

MMF_CUDA_TEST("parity: matmul, tf32") {
  MatmulPrecision p(cuda::Precision::tf32);
  check_matmuls(kTf32);
}

MMF_CUDA_TEST("parity: linear, fp32 and tf32") {
  {
    MatmulPrecision p(cuda::Precision::fp32);
    check_linears(kFp32);
  }
  MatmulPrecision p(cuda::Precision::tf32);
  check_linears(kTf32);
}

MMF_CUDA_TEST("matmul in float64 on the device is exact to rounding") {
  Generator gen(33);
  Tensor a = Tensor::rand({3, 37, 65}, gen, -1, 1, DType::f64), b = Tensor::rand({65, 29}, gen, -1, 1, DType::f64);
  Tensor cpu = matmul(a, b);
  Tensor dev = matmul(a.to(Device::cuda(0)), b.to(Device::cuda(0)));
  CHECK(testing::relative_error(dev, cpu) <= 1e-13);
}
