// CPU↔CUDA parity of conv2d and conv_transpose2d (forward, grad input, grad weight, grad
// bias) through cuDNN and through the im2col fallback, in both convolution precisions, on
// odd sizes, strides, padding, dilation and groups. Tolerances (docs/cuda.md): fp32 differs
// from the CPU only by summation order (1e-5 relative); tf32 rounds operands to a 10-bit
// mantissa (5e-3 relative).
#include "cuda/precision.h"
#include "tests/cuda/cuda_parity.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/conv.h"
#endif

using namespace mmfuse;

namespace {

constexpr double kFp32 = 1e-5;
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

struct ConvCase {
  Shape x, w;
  Conv2dOptions o;
  bool bias;
};

std::vector<ConvCase> conv_cases() {
  Conv2dOptions plain, padded, strided, dilated, grouped, pointwise, depthwise;
  padded.pad_h = padded.pad_w = 1;
  strided.stride_h = 2, strided.stride_w = 3, strided.pad_h = 1, strided.pad_w = 2;
  dilated.dilation_h = 2, dilated.dilation_w = 3, dilated.pad_h = 2;
  grouped.groups = 3, grouped.pad_h = grouped.pad_w = 1;
  depthwise.groups = 5, depthwise.pad_h = depthwise.pad_w = 1;
  return {{{2, 3, 7, 9}, {5, 3, 3, 3}, plain, true},       {{3, 5, 11, 13}, {7, 5, 3, 3}, padded, true},
          {{2, 3, 15, 17}, {4, 3, 5, 3}, strided, false},  {{1, 2, 13, 19}, {3, 2, 3, 3}, dilated, true},
          {{2, 6, 9, 7}, {9, 2, 3, 3}, grouped, true},     {{2, 33, 7, 5}, {17, 33, 1, 1}, pointwise, true},
          {{2, 5, 9, 9}, {5, 1, 3, 3}, depthwise, false},  {{1, 1, 1, 1}, {1, 1, 1, 1}, plain, true}};
}

struct TransposeCase {
  Shape x, w;
  ConvTranspose2dOptions o;
  bool bias;
};

std::vector<TransposeCase> transpose_cases() {
  ConvTranspose2dOptions plain, upsample, grouped;
  upsample.stride_h = upsample.stride_w = 2, upsample.pad_h = upsample.pad_w = 1;
  upsample.output_padding_h = 1;
  grouped.groups = 2, grouped.stride_h = 3, grouped.dilation_w = 2;
  return {{{2, 3, 5, 7}, {3, 4, 3, 3}, plain, true},
          {{2, 5, 7, 9}, {5, 3, 4, 4}, upsample, true},
          {{1, 4, 5, 3}, {4, 3, 3, 3}, grouped, false}};
}

void check_convs(double tol) {
  Generator gen(41);
  for (const ConvCase& c : conv_cases()) {
    INFO("conv2d x " << shape_str(c.x) << " w " << shape_str(c.w) << " groups " << c.o.groups);
    TensorList in = {Tensor::rand(c.x, gen, -1, 1, DType::f32), Tensor::rand(c.w, gen, -1, 1, DType::f32)};
    Conv2dOptions o = c.o;
    if (c.bias) {
      in.push_back(Tensor::rand({c.w[0]}, gen, -1, 1, DType::f32));
      CHECK_PARITY([o](const TensorList& t) { return conv2d(t[0], t[1], t[2], o); }, in, tol);
    } else {
      CHECK_PARITY([o](const TensorList& t) { return conv2d(t[0], t[1], Tensor(), o); }, in, tol);
    }
  }
  for (const TransposeCase& c : transpose_cases()) {
    INFO("conv_transpose2d x " << shape_str(c.x) << " w " << shape_str(c.w) << " groups " << c.o.groups);
    TensorList in = {Tensor::rand(c.x, gen, -1, 1, DType::f32), Tensor::rand(c.w, gen, -1, 1, DType::f32)};
    ConvTranspose2dOptions o = c.o;
    if (c.bias) {
      in.push_back(Tensor::rand({c.w[1] * o.groups}, gen, -1, 1, DType::f32));
      CHECK_PARITY([o](const TensorList& t) { return conv_transpose2d(t[0], t[1], t[2], o); }, in, tol);
    } else {
      CHECK_PARITY([o](const TensorList& t) { return conv_transpose2d(t[0], t[1], Tensor(), o); }, in, tol);
    }
  }
}

}  // namespace

MMF_CUDA_TEST("parity: conv2d and conv_transpose2d, fp32") {
  ConvPrecision p(cuda::Precision::fp32);
  check_convs(kFp32);
}

MMF_CUDA_TEST("parity: conv2d and conv_transpose2d, tf32") {
  ConvPrecision p(cuda::Precision::tf32);
  check_convs(kTf32);
}

MMF_CUDA_TEST("parity: conv2d and conv_transpose2d on the im2col fallback") {
  ConvPrecision p(cuda::Precision::fp32);
  ForceFallback f(true);
  check_convs(kFp32);
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
