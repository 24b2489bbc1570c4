// CPU↔CUDA parity of softmax, log_softmax (any dim), cross_entropy (with ignore_index, every
// reduction, spatial targets) and l1 / mse losses, forward and backward, on odd sizes.
// Tolerances (docs/cuda.md): exponentials and logarithms differ by a few ulps between CUDA's
// libm and glibc (2e-6); loss sums accumulate in double on both sides (1e-6 after the cast).
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

constexpr double kLibm = 2e-6;
constexpr double kSum = 1e-6;

Tensor labels(const Shape& s, int64_t classes, Generator& gen, bool with_ignored) {
  Tensor r = Tensor::rand(s, gen, 0, static_cast<double>(classes), DType::f32);
  std::vector<float> v = r.to_vector<float>();
  std::vector<int32_t> t(v.size());
  for (size_t i = 0; i < v.size(); ++i) t[i] = with_ignored && i % 5 == 2 ? -100 : static_cast<int32_t>(v[i]);
  return Tensor::from_vector(t, s);
}

}  // namespace

MMF_CUDA_TEST("parity: softmax and log_softmax over any dim") {
  Generator gen(71);
  std::vector<std::pair<Shape, int64_t>> cases = {{{7}, 0},      {{5, 37}, 1},      {{5, 37}, 0},
                                                  {{3, 7, 33}, 1}, {{2, 3, 5, 7}, -1}, {{129, 1000}, 1}};
  for (auto& [s, dim] : cases) {
    INFO("softmax " << shape_str(s) << " dim " << dim);
    int64_t d = dim;
    TensorList in = {Tensor::rand(s, gen, -4, 4, DType::f32)};
    CHECK_PARITY([d](const TensorList& t) { return softmax(t[0], d); }, in, kLibm);
    CHECK_PARITY([d](const TensorList& t) { return log_softmax(t[0], d); }, in, kLibm);
  }
}

MMF_CUDA_TEST("parity: cross_entropy with ignore_index and every reduction") {
  Generator gen(72);
  struct Case { Shape logits; Shape target; };
  std::vector<Case> cases = {{{7}, {}}, {{5, 3}, {5}}, {{33, 10}, {33}}, {{3, 7, 5, 9}, {3, 5, 9}}};
  for (const Case& c : cases) {
    for (bool ignored : {false, true}) {
      Tensor logits = Tensor::rand(c.logits, gen, -3, 3, DType::f32);
      int64_t classes = c.logits.size() == 1 ? c.logits[0] : c.logits[1];
      Tensor target = labels(c.target, classes, gen, ignored && !c.target.empty());
      for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
        INFO("cross_entropy " << shape_str(c.logits) << " ignored " << ignored << " reduction " << static_cast<int>(r));
        CHECK_PARITY([r](const TensorList& t) { return cross_entropy(t[0], t[1], -100, r); }, {logits, target}, kLibm);
      }
    }
  }
}

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

MMF_CUDA_TEST("parity: l1_loss and mse_loss") {
  Generator gen(73);
  for (const Shape& s : std::vector<Shape>{{7}, {3, 37, 129}, {1000003}}) {
    TensorList in = {Tensor::rand(s, gen, -1, 1, DType::f32), Tensor::rand(s, gen, -1, 1, DType::f32)};
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      INFO("pointwise losses " << shape_str(s) << " reduction " << static_cast<int>(r));
      CHECK_PARITY([r](const TensorList& t) { return l1_loss(t[0], t[1], r); }, in, kSum, 0);
      CHECK_PARITY([r](const TensorList& t) { return mse_loss(t[0], t[1], r); }, in, kSum, 0);
    }
  }
}
