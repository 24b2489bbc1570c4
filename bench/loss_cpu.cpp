// CPU time of the softmax / cross-entropy family on the shapes the zoo trains: the main job's
// SoftmaxWithLoss (logits [16, 7, 64, 64], 2 modalities x batch 8, 7 classes, ignore_label 255
// at ~5% of the positions), LeNet's ([64, 10]), a wide classifier ([256, 1000]), softmax /
// log_softmax over the channels of a feature map, and the SoftmaxWithLoss layer's label
// preparation. Each row is the median of 15 runs after a warm-up, forward alone and forward +
// backward, in float32 (what training runs). Run with OMP_NUM_THREADS set to compare thread
// counts.
//
// Usage: bench_loss_cpu [runs, default 15]
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

int g_runs = 15;

double median_ms(const std::function<void()>& f) { return bench::median_ms(f, g_runs); }

void row(const char* what, double fwd_ms, double both_ms) {
  std::printf("%-44s %9.3f ms %9.3f ms\n", what, fwd_ms, both_ms);
}

// Class indices in [0, classes), with every 20th position set to `ignore`.
Tensor labels(const Shape& shape, int64_t classes, int32_t ignore) {
  Tensor t = Tensor::empty(shape, DType::i32);
  int32_t* p = t.data<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = i % 20 == 7 ? ignore : static_cast<int32_t>((i * 7919) % classes);
  return t;
}

void bench_cross_entropy(const char* what, const Shape& shape) {
  Generator gen(1);
  Tensor logits = Tensor::randn(shape, gen, 0, 2, DType::f32).set_requires_grad();
  Shape target_shape = shape;
  target_shape.erase(target_shape.begin() + 1);
  Tensor target = labels(target_shape, shape[1], 255);
  double fwd = median_ms([&] {
    autograd::NoGradGuard no_grad;
    cross_entropy(logits, target, 255, Reduction::sum);
  });
  double both = median_ms([&] {
    logits.set_grad(Tensor());
    cross_entropy(logits, target, 255, Reduction::sum).backward();
  });
  row(what, fwd, both);
}

void bench_softmax(const char* what, const Shape& shape, bool log) {
  Generator gen(2);
  Tensor x = Tensor::randn(shape, gen, 0, 2, DType::f32).set_requires_grad();
  Tensor gy = Tensor::randn(shape, gen, 0, 1, DType::f32);
  double fwd = median_ms([&] {
    autograd::NoGradGuard no_grad;
    log ? log_softmax(x, 1) : softmax(x, 1);
  });
  double both = median_ms([&] {
    x.set_grad(Tensor());
    (log ? log_softmax(x, 1) : softmax(x, 1)).backward(gy);
  });
  row(what, fwd, both);
}

// What SoftmaxWithLoss does to its label before cross_entropy on every call
// (layers/softmax_with_loss.cpp): float -> int32, then tiled over the 2 modalities.
void bench_label_preparation() {
  Tensor label = Tensor::zeros({8, 1, 64, 64}, DType::f32);
  double ms = median_ms([&] { modality_tile(label.to(DType::i32).reshape({8, 64, 64}), 2); });
  std::printf("%-44s %9.3f ms\n", "label float->int32 + tile x2 [8,64,64]", ms);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_runs = std::max(1, std::atoi(argv[1]));
  std::printf("float32, median of %d runs             %12s %12s\n", g_runs, "forward", "fwd+bwd");
  bench_cross_entropy("cross_entropy [16,7,64,64] (main job)", {16, 7, 64, 64});
  bench_cross_entropy("cross_entropy [8,7,64,64] (main ensemble)", {8, 7, 64, 64});
  bench_cross_entropy("cross_entropy [64,10] (LeNet)", {64, 10});
  bench_cross_entropy("cross_entropy [256,1000]", {256, 1000});
  bench_softmax("softmax [16,7,64,64] dim 1", {16, 7, 64, 64}, false);
  bench_softmax("log_softmax [16,7,64,64] dim 1", {16, 7, 64, 64}, true);
  bench_softmax("softmax [256,1000] dim 1", {256, 1000}, false);
  bench_softmax("log_softmax [256,1000] dim 1", {256, 1000}, true);
  bench_label_preparation();
  return 0;
}
