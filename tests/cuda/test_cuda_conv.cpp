// CPU↔CUDA parity of conv2d and conv_transpose2d (forward, grad input, grad weight, grad
// bias): the conv op-case table (tests/op_cases/conv.cpp) through cuDNN and through the im2col
// fallback, in both convolution precisions. Tolerances (docs/cuda.md): fp32 differs from the
// CPU only by summation order (the table's 1e-5 relative); tf32 rounds operands to a 10-bit
// mantissa (5e-3 relative). And on CUDA alone: determinism and the algorithm cache.
#include "cuda/precision.h"
#include "tests/cuda/cuda_parity.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/conv.h"
#endif

using namespace mmfuse;

namespace {

constexpr double kTf32 = 5e-3;

struct ConvPrecision {
  cuda::Precision saved = cuda::conv_precision();
  explicit ConvPrecision(cuda::Precision p) { cuda::set_conv_precision(p); }
  ~ConvPrecision() { cuda::set_conv_precision(saved); }
};

struct ForceFallback {
#ifdef MMFUSE_WITH_CUDA
  bool saved = cuda::conv_force_fallback();
  explicit ForceFallback(bool on) { cuda::set_conv_force_fallback(on); }
  ~ForceFallback() { cuda::set_conv_force_fallback(saved); }
#else
  explicit ForceFallback(bool) {}
#endif
};

}  // namespace

TEST_CASE("parity: the conv table, fp32") {
  if (!testing::cuda_available()) {
    testing::check_parity_cases(testing::conv_cases());  // says what it skips
    return;
  }
  ConvPrecision p(cuda::Precision::fp32);
  testing::check_parity_cases(testing::conv_cases());
}

MMF_CUDA_TEST("parity: the conv table, tf32") {
  ConvPrecision p(cuda::Precision::tf32);
  testing::check_parity_cases(testing::conv_cases(), kTf32);
}

MMF_CUDA_TEST("parity: the conv table on the im2col fallback") {
  ConvPrecision p(cuda::Precision::fp32);
  ForceFallback f(true);
  testing::check_parity_cases(testing::conv_cases());
}

MMF_CUDA_TEST("conv2d on CUDA is deterministic, and the algorithm cache fills once") {
  Generator gen(42);
  Tensor x = Tensor::rand({4, 8, 17, 15}, gen, -1, 1, DType::f32).to(Device::cuda(0));
  Tensor w = Tensor::rand({16, 8, 3, 3}, gen, -1, 1, DType::f32).to(Device::cuda(0));
  x.set_requires_grad();
  w.set_requires_grad();
  Conv2dOptions o;
  o.pad_h = o.pad_w = 1;
  auto run = [&] {
    x.set_grad(Tensor());
    w.set_grad(Tensor());
    Tensor y = conv2d(x, w, Tensor(), o);
    sum(y * y).backward();
    return TensorList{y.to(Device::cpu()), x.grad().to(Device::cpu()), w.grad().to(Device::cpu())};
  };
  TensorList a = run();
#ifdef MMFUSE_WITH_CUDA
  size_t cached = cuda::conv_algorithm_cache_size();
#endif
  TensorList b = run();
  for (size_t i = 0; i < a.size(); ++i) CHECK(testing::relative_error(b[i], a[i]) == 0);
#ifdef MMFUSE_WITH_CUDA
  CHECK(cuda::conv_algorithm_cache_size() == cached);
#endif
}
