// SyncBN's path through batch_norm (BatchNormOptions::sum_over_processes) without MPI: the
// all-reduce is replaced by a stand-in for one other process whose sums are this process's
// own plus fixed offsets. The end-to-end runs under mpirun are in tests/training/
// test_distributed.cpp; these check the op on its own, on the CPU and CPU against CUDA (the
// CUDA path stages the per-channel values through the host).
#include <doctest/doctest.h>

#include <functional>

#include "core/ops.h"
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

// The all-reduce as seen with one other process: each value becomes itself plus the other
// process's, which is the same value (`twin`) or that plus an offset; the count entry (the
// last of the first forward call, which has groups + 1 values) is always doubled.
std::function<void(double*, size_t)> other_process(int64_t groups, bool twin) {
  return [groups, twin](double* v, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const bool count_entry = n == static_cast<size_t>(groups) + 1 && i + 1 == n;
      v[i] = 2 * v[i] + (twin || count_entry ? 0.0 : 0.05 * static_cast<double>(i % 7 + 1));
    }
  };
}

}  // namespace

TEST_CASE("SyncBN with an identical second process equals plain batch norm") {
  Generator gen(71);
  for (int64_t modalities : {1, 2}) {
    INFO("modalities " << modalities);
    const int64_t channels = 3, groups = modalities * channels;
    Tensor x = Tensor::rand({4, channels, 5, 3}, gen, -1, 3, DType::f64);
    Tensor w = Tensor::rand({groups}, gen, 0.5, 2, DType::f64);
    Tensor b = Tensor::rand({groups}, gen, -1, 1, DType::f64);
    for (const Tensor& t : {x, w, b}) t.set_requires_grad();
    Tensor dy = Tensor::rand(x.shape(), gen, -1, 1, DType::f64);
    BatchNormOptions plain;
    plain.modalities = modalities;
    BatchNormOptions sync = plain;
    sync.sum_over_processes = other_process(groups, /*twin=*/true);
    TensorList results[2];
    for (int s = 0; s < 2; ++s) {
      for (const Tensor& t : {x, w, b}) t.set_grad(Tensor());
      Tensor y = batch_norm(x, w, b, Tensor(), Tensor(), s ? sync : plain);
      y.backward(dy);
      results[s] = {y.detach(), x.grad(), w.grad(), b.grad()};
    }
    for (size_t i = 0; i < 4; ++i) CHECK(testing::relative_error(results[1][i], results[0][i]) <= 1e-13);
  }
}

TEST_CASE("SyncBN with a different second process moves the statistics") {
  Generator gen(72);
  Tensor x = Tensor::rand({4, 3, 5}, gen, -1, 3, DType::f64);
  BatchNormOptions plain, sync;
  sync.sum_over_processes = other_process(3, /*twin=*/false);
  Tensor a = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), plain);
  Tensor c = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), sync);
  CHECK(testing::relative_error(c, a) > 1e-3);
}

MMF_CUDA_TEST("parity: SyncBN statistics staged through the host on CUDA") {
  Generator gen(73);
  for (int64_t modalities : {1, 2}) {
    INFO("modalities " << modalities);
    const int64_t channels = 5, groups = modalities * channels;
    BatchNormOptions o;
    o.modalities = modalities;
    o.sum_over_processes = other_process(groups, /*twin=*/false);
    TensorList in = {Tensor::rand({4, channels, 6, 7}, gen, -1, 3, DType::f32),
                     Tensor::rand({groups}, gen, 0.5, 2, DType::f32), Tensor::rand({groups}, gen, -1, 1, DType::f32)};
    CHECK_PARITY([o](const TensorList& t) { return batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), o); }, in, 1e-6,
                 1e-5);
  }
}
