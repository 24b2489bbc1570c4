// CPU↔CUDA parity of sum, mean and max over every kind of dims (inner, outer, middle,
// several, all; keepdim), on odd and non-multiple-of-32 shapes; determinism; max ties.
// Tolerances (docs/cuda.md): sums are accumulated in double on both sides, so they differ by
// the rounding of the final cast only; max and its gradient agree to the bit.
#include <algorithm>
#include <cmath>

#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

constexpr double kSum = 1e-6;
constexpr double kExact = 0;

struct Case {
  Shape shape;
  std::vector<int64_t> dims;
  bool keepdim;
};

std::vector<Case> reduce_cases() {
  return {{{3, 37, 129}, {}, false},  {{3, 37, 129}, {0}, false},    {{3, 37, 129}, {1}, true},
          {{3, 37, 129}, {2}, false}, {{3, 37, 129}, {0, 2}, true},  {{3, 37, 129}, {-1, 0}, false},
          {{1000003}, {}, false},     {{1000003}, {0}, true},        {{4, 5, 7, 9}, {0, 2, 3}, true},
          {{2000, 3}, {1}, false},    {{2000, 3}, {0}, false},       {{5, 3001}, {1}, false},
          {{7}, {0}, false},          {{1, 1, 5}, {1}, false},       {{33, 1, 65}, {0, 1}, false}};
}

}  // namespace

MMF_CUDA_TEST("parity: sum, mean, max over any dims") {
  Generator gen(21);
  for (const Case& c : reduce_cases()) {
    std::string dims;
    for (int64_t d : c.dims) dims += std::to_string(d) + " ";
    INFO("shape " << shape_str(c.shape) << " dims { " << dims << "} keepdim " << c.keepdim);
    TensorList in = {Tensor::rand(c.shape, gen, -1, 1, DType::f32)};
    CHECK_PARITY([&c](const TensorList& t) { return sum(t[0], c.dims, c.keepdim); }, in, kSum, kExact);
    CHECK_PARITY([&c](const TensorList& t) { return mean(t[0], c.dims, c.keepdim); }, in, kSum, kSum);
    CHECK_PARITY([&c](const TensorList& t) { return max(t[0], c.dims, c.keepdim); }, in, kExact, kExact);
  }
}

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
