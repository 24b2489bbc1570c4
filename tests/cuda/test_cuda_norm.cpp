// CPU↔CUDA parity of batch_norm with modalities (training with and without running stats,
// eval, with and without affine; 2-d to 4-d inputs, odd sizes) and of dropout (the same
// Philox mask as the CPU for the same generator state). Tolerances (docs/cuda.md): batch norm
// statistics are accumulated in double on both sides, in different orders, and the affine
// may be contracted into an FMA: 1e-6 forward, 1e-5 backward (the closed form subtracts
// nearly equal terms); dropout agrees to the bit.
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

constexpr double kNormFwd = 1e-6;
constexpr double kNormBwd = 1e-5;

}  // namespace

MMF_CUDA_TEST("parity: batch_norm with modalities, training and eval") {
  Generator gen(61);
  struct Case { Shape x; int64_t modalities; };
  std::vector<Case> cases = {{{6, 3}, 2}, {{4, 5, 7}, 1}, {{6, 3, 5, 7}, 3}, {{4, 33, 9, 11}, 2}, {{2, 3, 1, 1}, 1}};
  for (const Case& c : cases) {
    int64_t groups = c.modalities * c.x[1];
    for (bool training : {true, false}) {
      for (bool affine : {true, false}) {
        INFO("batch_norm " << shape_str(c.x) << " modalities " << c.modalities << " training " << training
                           << " affine " << affine);
        BatchNormOptions o;
        o.training = training;
        o.modalities = c.modalities;
        TensorList in = {Tensor::rand(c.x, gen, -1, 3, DType::f32)};
        if (affine) {
          in.push_back(Tensor::rand({groups}, gen, 0.5, 2, DType::f32));
          in.push_back(Tensor::rand({groups}, gen, -1, 1, DType::f32));
        }
        // Running stats are inputs too (moved to the device by the harness); eval reads them.
        in.push_back(Tensor::rand({groups}, gen, -1, 1, DType::f32));
        in.push_back(Tensor::rand({groups}, gen, 0.5, 2, DType::f32));
        if (affine)
          CHECK_PARITY([o](const TensorList& t) { return batch_norm(t[0], t[1], t[2], t[3], t[4], o); }, in, kNormFwd,
                       kNormBwd);
        else
          CHECK_PARITY([o](const TensorList& t) { return batch_norm(t[0], Tensor(), Tensor(), t[1], t[2], o); }, in,
                       kNormFwd, kNormBwd);
      }
    }
    INFO("batch_norm " << shape_str(c.x) << " without running stats");
    BatchNormOptions o;
    o.modalities = c.modalities;
    CHECK_PARITY([o](const TensorList& t) { return batch_norm(t[0], Tensor(), Tensor(), Tensor(), Tensor(), o); },
                 {Tensor::rand(c.x, gen, -1, 3, DType::f32)}, kNormFwd, kNormBwd);
  }
}

MMF_CUDA_TEST("batch_norm on CUDA updates the running stats as the CPU does") {
  Generator gen(62);
  Tensor x = Tensor::rand({6, 5, 7, 3}, gen, -1, 3, DType::f32);
  Tensor rm = Tensor::rand({15}, gen, -1, 1, DType::f32), rv = Tensor::rand({15}, gen, 0.5, 2, DType::f32);
  Tensor rm_dev = rm.to(Device::cuda(0)), rv_dev = rv.to(Device::cuda(0));
  BatchNormOptions o;
  o.modalities = 3;
  o.momentum = 0.3;
  batch_norm(x, Tensor(), Tensor(), rm, rv, o);
  batch_norm(x.to(Device::cuda(0)), Tensor(), Tensor(), rm_dev, rv_dev, o);
  CHECK(testing::relative_error(rm_dev, rm) <= 1e-6);
  CHECK(testing::relative_error(rv_dev, rv) <= 1e-6);
}

MMF_CUDA_TEST("dropout on CUDA draws the CPU's mask") {
  for (const Shape& s : std::vector<Shape>{{7}, {3, 37, 129}, {1000003}}) {
    for (uint64_t skip : {0, 1, 3}) {  // offsets not a multiple of 4 start mid-counter
      INFO("dropout " << shape_str(s) << " after " << skip << " words");
      Generator data(63);
      Tensor x = Tensor::rand(s, data, 0.5, 1.5, DType::f32);
      Generator g_cpu(64), g_dev(64);
      g_cpu.set_state(64, skip);
      g_dev.set_state(64, skip);
      CHECK_PARITY([&g_cpu, &g_dev](const TensorList& t) {
        Generator& gen = t[0].is_cuda() ? g_dev : g_cpu;
        return dropout(t[0], 0.3, true, gen);
      }, {x}, 0, 0);
    }
  }
}
