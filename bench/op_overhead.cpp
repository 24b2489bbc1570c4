// The fixed cost of an op on the CPU: microseconds per call of small ops (ReLU, add, a 1x1
// convolution), forward alone and forward + backward, at sizes where the arithmetic is nothing
// (the main job's decoder runs dozens of ops on [16, 64, 2, 2] .. [16, 64, 16, 16]) and one
// where it is not. Each row is the median over 15 runs of a batch of calls after a warm-up.
// Run with OMP_NUM_THREADS set to compare thread counts; `perf record` on it shows where the
// fixed cost goes.
//
// Usage: bench_op_overhead [calls per run, default 2000]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "bench/host_timing.h"
#include "core/ops.h"

using namespace mmfuse;

namespace {

int g_calls = 2000;

// Microseconds per call of f, median over 15 runs of g_calls calls.
double us_per_call(const std::function<void()>& f) {
  for (int i = 0; i < g_calls / 10 + 1; ++i) f();
  return bench::median_ms([&] { for (int i = 0; i < g_calls; ++i) f(); }, 15, 0) * 1e3 / g_calls;
}

void row(const char* op, const Shape& shape, const std::function<Tensor(const Tensor&)>& f) {
  Generator gen(1);
  Tensor x = Tensor::randn(shape, gen);
  Tensor xg = Tensor::randn(shape, gen);
  xg.set_requires_grad();
  double forward = 0, both = 0;
  {
    autograd::NoGradGuard no_grad;
    forward = us_per_call([&] { (void)f(x); });
  }
  both = us_per_call([&] {
    Tensor y = f(xg);
    y.backward(Tensor::ones(y.shape()));
    xg.set_grad(Tensor());
  });
  std::printf("%-24s %-18s %10.2f %12.2f\n", op, shape_str(shape).c_str(), forward, both);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_calls = std::max(1, std::atoi(argv[1]));
  std::printf("%-24s %-18s %10s %12s\n", "op", "shape", "fwd us", "fwd+bwd us");
  for (const Shape& shape : {Shape{16, 64, 2, 2}, Shape{16, 64, 4, 4}, Shape{16, 64, 16, 16}}) {
    row("relu", shape, [](const Tensor& x) { return relu(x); });
    row("add (x + x)", shape, [](const Tensor& x) { return x + x; });
  }
  // The engine's cost per node of a deep graph: 128 residual steps y = relu(y) + y (256 nodes,
  // 128 gradient sums) on a tiny tensor; the row reports microseconds per node.
  {
    constexpr int kSteps = 128;
    Generator g(3);
    Tensor x = Tensor::randn({16}, g);
    x.set_requires_grad();
    double both = us_per_call([&] {
      Tensor y = x;
      for (int k = 0; k < kSteps; ++k) y = relu(y) + y;
      sum(y).backward();
      x.set_grad(Tensor());
    }) / (2 * kSteps);
    std::printf("%-24s %-18s %10s %12.2f\n", "graph: relu(y) + y", "[16], per node", "", both);
  }
  Generator gen(2);
  Tensor w = Tensor::randn({64, 64, 1, 1}, gen);
  Tensor b = Tensor::zeros({64});
  for (const Shape& shape : {Shape{16, 64, 2, 2}, Shape{16, 64, 16, 16}})
    row("conv 1x1 64->64", shape, [&](const Tensor& x) { return conv2d(x, w, b, Conv2dOptions{}); });
  return 0;
}
