// CPU↔CUDA parity of matmul and linear through cuBLAS: the linalg op-case table
// (tests/op_cases/linalg.cpp) in both matmul precisions. Tolerances (docs/cuda.md): fp32
// products differ from OpenBLAS only by summation order (the table's 1e-5 relative); tf32
// rounds the operands to a 10-bit mantissa (5e-3 relative, about 10x the expected error for
// inner sizes of a few hundred).
#include "cuda/precision.h"
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

constexpr double kTf32 = 5e-3;

// Restores the process-wide matmul precision when a test leaves (even by an exception).
struct MatmulPrecision {
  cuda::Precision saved = cuda::matmul_precision();
  explicit MatmulPrecision(cuda::Precision p) { cuda::set_matmul_precision(p); }
  ~MatmulPrecision() { cuda::set_matmul_precision(saved); }
};

}  // namespace

TEST_CASE("parity: the linalg table, fp32") {
  if (!testing::cuda_available()) {
    testing::check_parity_cases(testing::linalg_cases());  // says what it skips
    return;
  }
  MatmulPrecision p(cuda::Precision::fp32);
  testing::check_parity_cases(testing::linalg_cases());
}

MMF_CUDA_TEST("parity: the linalg table, tf32") {
  MatmulPrecision p(cuda::Precision::tf32);
  testing::check_parity_cases(testing::linalg_cases(), kTf32);
}

MMF_CUDA_TEST("matmul in float64 on the device is exact to rounding") {
  Generator gen(33);
  Tensor a = Tensor::rand({3, 37, 65}, gen, -1, 1, DType::f64), b = Tensor::rand({65, 29}, gen, -1, 1, DType::f64);
  Tensor cpu = matmul(a, b);
  Tensor dev = matmul(a.to(Device::cuda(0)), b.to(Device::cuda(0)));
  CHECK(testing::relative_error(dev, cpu) <= 1e-13);
}
