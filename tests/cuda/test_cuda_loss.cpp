// CPU↔CUDA parity of softmax, log_softmax, cross_entropy and the l1 / mse losses: the loss
// op-case table (tests/op_cases/loss.cpp); and cross_entropy's device-side checks of a CUDA
// target.
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

Tensor labels(const Shape& s, int64_t classes, Generator& gen, bool with_ignored) {
  Tensor r = Tensor::rand(s, gen, 0, static_cast<double>(classes), DType::f32);
  std::vector<float> v = r.to_vector<float>();
  std::vector<int32_t> t(v.size());
  for (size_t i = 0; i < v.size(); ++i) t[i] = with_ignored && i % 5 == 2 ? -100 : static_cast<int32_t>(v[i]);
  return Tensor::from_vector(t, s);
}

}  // namespace

TEST_CASE("parity: the loss table") { testing::check_parity_cases(testing::loss_cases()); }

MMF_CUDA_TEST("cross_entropy checks and counts a CUDA target on the device, with the CPU's message") {
  // The targets stay on the GPU: a kernel counts the non-ignored ones and finds the first bad
  // one; the count and the error must be the CPU's.
  Generator gen(74);
  Tensor logits = Tensor::rand({3, 7, 50, 41}, gen, -3, 3, DType::f32);
  Tensor target = labels({3, 50, 41}, 7, gen, true);
  int64_t cpu_count = -1, cuda_count = -2;
  cross_entropy(logits, target, -100, Reduction::sum, &cpu_count);
  cross_entropy(logits.to(Device::cuda(0)), target.to(Device::cuda(0)), -100, Reduction::sum, &cuda_count);
  CHECK(cpu_count == 3 * 50 * 41 - 3 * 50 * 41 / 5);
  CHECK(cuda_count == cpu_count);
  std::vector<int32_t> t = target.to_vector<int32_t>();
  t[2 * 50 * 41 + 7] = 9;  // two bad labels: the first in order is reported
  t[2 * 50 * 41 + 1000] = -3;
  Tensor bad = Tensor::from_vector(t, {3, 50, 41});
  std::string cpu_message, cuda_message;
  try {
    cross_entropy(logits, bad);
  } catch (const OpError& e) {
    cpu_message = e.what();
  }
  try {
    cross_entropy(logits.to(Device::cuda(0)), bad.to(Device::cuda(0)));
  } catch (const OpError& e) {
    cuda_message = e.what();
  }
  CHECK(cpu_message.find("target 9 at position [2, 0, 7]") != std::string::npos);
  CHECK(cuda_message == cpu_message);
}
