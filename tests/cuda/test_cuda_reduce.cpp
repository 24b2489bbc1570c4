// CPU↔CUDA parity of sum, mean and max: the reduce op-case table (tests/op_cases/reduce.cpp:
// every kind of dims, odd and non-multiple-of-32 shapes); and on CUDA alone: determinism, max
// ties, empty reductions.
#include <algorithm>
#include <cmath>

#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

TEST_CASE("parity: the reduce table") { testing::check_parity_cases(testing::reduce_cases()); }

MMF_CUDA_TEST("reductions on CUDA are deterministic") {
  Generator gen(22);
  Tensor x = Tensor::rand({1000003}, gen, -1, 1, DType::f32).to(Device::cuda(0));
  Tensor y = Tensor::rand({64, 3001}, gen, -1, 1, DType::f32).to(Device::cuda(0));
  for (int run = 0; run < 3; ++run) {
    CHECK(sum(x).to_vector<float>() == sum(x).to_vector<float>());
    CHECK(sum(y, {0}).to_vector<float>() == sum(y, {0}).to_vector<float>());
    CHECK(mean(y, {1}).to_vector<float>() == mean(y, {1}).to_vector<float>());
  }
}

MMF_CUDA_TEST("max on CUDA: the gradient goes to the first maximal element, as on the CPU") {
  Device gpu = Device::cuda(0);
  Tensor x = Tensor::from_vector<float>({1, 3, 3, 2, 5, 5, 5, 0}, {2, 4}, DType::f32, gpu).set_requires_grad();
  Tensor m = max(x, {1});
  CHECK(m.to_vector<float>() == std::vector<float>{3, 5});
  m.backward(Tensor::from_vector<float>({10, 20}, {2}, DType::f32, gpu));
  CHECK(x.grad().to_vector<float>() == std::vector<float>{0, 10, 0, 0, 20, 0, 0, 0});
  // A long row of ties: chunked reduction still picks the lowest offset.
  Tensor t = Tensor::full({100003}, 1.0, DType::f32, gpu).set_requires_grad();
  max(t).backward();
  auto g = t.grad().to_vector<float>();
  CHECK(g[0] == 1);
  CHECK(std::count(g.begin(), g.end(), 1.0f) == 1);
}

MMF_CUDA_TEST("mean and sum of empty reductions on CUDA match the CPU") {
  Tensor e = Tensor::empty({0, 3}, DType::f32, Device::cuda(0));
  CHECK(sum(e, {0}).to_vector<float>() == std::vector<float>{0, 0, 0});
  auto m = mean(e, {0}).to_vector<float>();
  CHECK(std::isnan(m[0]));
  CHECK_THROWS_AS(max(Tensor::empty({3, 0}, DType::f32, Device::cuda(0)), {1}), OpError);
}
