// CPU rate of the convolution and matmul kernels: GFLOP/s of conv2d forward and
// forward+backward for x [8,64,32,32] * w [64,64,3,3] (padding 1), and of a 512^3 matmul,
// each the median of a few runs after a warm-up. Run with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS
// set to compare thread counts.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "core/ops.h"

using namespace mmfuse;

namespace {

double median_seconds(const std::function<void()>& f, int runs = 7) {
  f();  // warm-up: first-touch allocations, BLAS thread start
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void report(const char* what, double flops, double seconds) {
  std::printf("%-44s %8.2f ms  %7.2f GFLOP/s\n", what, seconds * 1e3, flops / seconds * 1e-9);
}

void bench_conv(DType dtype) {
  Generator gen(1);
  const int64_t N = 8, C = 64, H = 32, W = 32, O = 64, K = 3;
  Tensor x = Tensor::randn({N, C, H, W}, gen, 0, 1, dtype).set_requires_grad();
  Tensor w = Tensor::randn({O, C, K, K}, gen, 0, 0.05, dtype).set_requires_grad();
  Tensor b = Tensor::zeros({O}, dtype).set_requires_grad();
  Conv2dOptions options{.pad_h = 1, .pad_w = 1};
  Tensor gy = Tensor::randn({N, O, H, W}, gen, 0, 1, dtype);
  double fwd_flops = 2.0 * N * O * H * W * C * K * K;  // one multiply-add per weight tap per output
  const char* type = dtype == DType::f32 ? "float32" : "float64";
  char label[96];
  double fwd = median_seconds([&] {
    autograd::NoGradGuard no_grad;
    conv2d(x, w, b, options);
  });
  std::snprintf(label, sizeof label, "conv2d forward %s", type);
  report(label, fwd_flops, fwd);
  double both = median_seconds([&] {
    x.set_grad(Tensor()), w.set_grad(Tensor()), b.set_grad(Tensor());
    conv2d(x, w, b, options).backward(gy);
  });
  std::snprintf(label, sizeof label, "conv2d forward+backward (dx, dw, db) %s", type);
  report(label, 3 * fwd_flops, both);
}

void bench_matmul(DType dtype) {
  Generator gen(2);
  const int64_t n = 512;
  Tensor a = Tensor::randn({n, n}, gen, 0, 1, dtype), b = Tensor::randn({n, n}, gen, 0, 1, dtype);
  double s = median_seconds([&] { matmul(a, b); });
  report(dtype == DType::f32 ? "matmul 512^3 float32" : "matmul 512^3 float64", 2.0 * n * n * n, s);
}

}  // namespace

int main() {
  std::printf("x [8,64,32,32] * w [64,64,3,3], padding 1; median of 7 runs\n");
  bench_conv(DType::f32);
  bench_conv(DType::f64);
  bench_matmul(DType::f32);
  bench_matmul(DType::f64);
  return 0;
}
