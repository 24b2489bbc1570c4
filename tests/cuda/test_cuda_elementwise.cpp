// CPU↔CUDA parity of the elementwise family: its op-case table (tests/op_cases/elementwise.cpp:
// odd and non-multiple-of-32 shapes, aligned and unaligned pointers, broadcasting, a chain
// through autograd), and float64 on the device.
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

TEST_CASE("parity: the elementwise table") { testing::check_parity_cases(testing::elementwise_cases()); }

MMF_CUDA_TEST("float64 on the device matches the CPU too") {
  Generator gen(15);
  Tensor x = Tensor::rand({3, 37, 129}, gen, -2, 2, DType::f64);
  Tensor y = tanh(x).to(Device::cuda(0));
  Tensor z = tanh(x.to(Device::cuda(0)));
  CHECK(y.dtype() == DType::f64);
  CHECK(testing::relative_error(z, y) <= 1e-14);
}
