// CPU↔CUDA parity of batch_norm and dropout: the norm op-case table (tests/op_cases/norm.cpp;
// dropout draws the CPU's Philox mask for the same generator state); and the running
// statistics a CUDA batch_norm updates.
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

TEST_CASE("parity: the norm table") { testing::check_parity_cases(testing::norm_cases()); }

MMF_CUDA_TEST("batch_norm on CUDA updates the running stats as the CPU does") {
  Generator gen(62);
  Tensor x = Tensor::rand({6, 5, 7, 3}, gen, -1, 3, DType::f32);
  Tensor rm = Tensor::rand({15}, gen, -1, 1, DType::f32), rv = Tensor::rand({15}, gen, 0.5, 2, DType::f32);
  Tensor rm_dev = rm.to(Device::cuda(0)), rv_dev = rv.to(Device::cuda(0));
  BatchNormOptions o;
  o.modalities = 3;
  o.momentum = 0.3;
  batch_norm(x, Tensor(), Tensor(), rm, rv, o);
  batch_norm(x.to(Device::cuda(0)), Tensor(), Tensor(), rm_dev, rv_dev, o);
  CHECK(testing::relative_error(rm_dev, rm) <= 1e-6);
  CHECK(testing::relative_error(rv_dev, rv) <= 1e-6);
}
