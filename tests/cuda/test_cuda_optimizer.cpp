// The optimizer on CUDA against the CPU optimizer fed the same gradients, over several steps:
// SGD with and without momentum, Nesterov, Adam and AdamW, AdaGrad, RMSProp and AdaDelta, weight decay with decay_mult,
// lr_mult (0 included), gradient clipping active and not, float32 and float64 parameters, a
// parameter without a gradient, and an optimizer holding parameters on both devices.
// Tolerance 1e-6 relative (the update rules are the same double arithmetic on both sides, up
// to FMA contraction; the global norm is summed in double in another order).
#include <cmath>
#include <string>

#include "core/optimizer.h"
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

constexpr double kTol = 1e-6;

proto::SolverParameter solver(const std::string& type, double momentum, double wd, double clip) {
  proto::SolverParameter s;
  s.set_type(type);
  s.set_momentum(static_cast<float>(momentum));
  s.set_weight_decay(static_cast<float>(wd));
  s.set_clip_gradients(static_cast<float>(clip));
  return s;
}

struct Spec {
  Shape shape;
  DType dtype;
  double lr_mult, decay_mult;
};

std::vector<Spec> specs() {
  return {{{5, 7}, DType::f32, 1, 1}, {{37}, DType::f32, 0.5, 0}, {{3, 3, 3}, DType::f64, 2, 1},
          {{4, 1}, DType::f32, 0, 1}, {{11}, DType::f32, 1, 1}};
}

// The parameters on `devices[k]` with the same initial values for the same seed.
std::vector<OptimParam> make_params(const std::vector<Device>& devices, uint64_t seed) {
  Generator gen(seed);
  std::vector<OptimParam> ps;
  auto sp = specs();
  for (size_t k = 0; k < sp.size(); ++k) {
    Tensor t = Tensor::rand(sp[k].shape, gen, -1, 1, sp[k].dtype).to(devices[k]).detach();
    t.set_requires_grad();
    std::string name = "p";  // (not "p" + to_string: GCC 12 misreports -Wrestrict on it)
    name += std::to_string(k);
    ps.push_back({name, t, sp[k].lr_mult, sp[k].decay_mult});
  }
  return ps;
}

// Runs `steps` steps of both optimizers on the same random gradients (parameter 4 gets none
// on odd steps) and compares norms, parameters and optimizer state.
void compare(const proto::SolverParameter& s, const std::vector<Device>& devices, int steps = 4) {
  std::vector<Device> cpu(devices.size(), Device::cpu());
  Optimizer ref(s, make_params(cpu, 91)), dev(s, make_params(devices, 91));
  Generator gen(92);
  for (int step = 0; step < steps; ++step) {
    INFO("step " << step);
    for (size_t k = 0; k < ref.params().size(); ++k) {
      Tensor wr = ref.params()[k].value, wd = dev.params()[k].value;  // handles sharing the parameters
      if (k == 4 && step % 2 == 1) {
        wr.set_grad(Tensor());
        wd.set_grad(Tensor());
        continue;
      }
      Tensor g = Tensor::rand(wr.shape(), gen, -1, 1, wr.dtype());
      wr.set_grad(g);
      wd.set_grad(g.to(devices[k]).detach());
    }
    double lr = 0.05 * (step + 1);
    double n_ref = ref.step(lr), n_dev = dev.step(lr);
    CHECK(std::abs(n_dev - n_ref) <= kTol * n_ref);
    for (size_t k = 0; k < ref.params().size(); ++k) {
      INFO("parameter " << k);
      CHECK(dev.params()[k].value.device() == devices[k]);
      CHECK(testing::relative_error(dev.params()[k].value, ref.params()[k].value) <= kTol);
    }
  }
  proto::SolverState a, b;
  ref.save_state(a);
  dev.save_state(b);
  REQUIRE(a.history_size() == b.history_size());
  CHECK(a.current_step() == b.current_step());
  for (int i = 0; i < a.history_size(); ++i) {
    INFO("state " << a.history(i).name());
    const auto& ha = a.history(i);
    const auto& hb = b.history(i);
    REQUIRE(ha.data_size() == hb.data_size());
    REQUIRE(ha.double_data_size() == hb.double_data_size());
    double diff = 0, norm = 0;
    for (int j = 0; j < ha.data_size(); ++j) {
      diff += std::pow(double(ha.data(j)) - hb.data(j), 2);
      norm += std::pow(double(ha.data(j)), 2);
    }
    for (int j = 0; j < ha.double_data_size(); ++j) {
      diff += std::pow(ha.double_data(j) - hb.double_data(j), 2);
      norm += std::pow(ha.double_data(j), 2);
    }
    CHECK(std::sqrt(diff) <= kTol * std::max(std::sqrt(norm), 1e-30));
  }
}

}  // namespace

MMF_CUDA_TEST("optimizer on CUDA follows the CPU optimizer step by step") {
  std::vector<Device> gpu(specs().size(), Device::cuda(0));
  struct Case { const char* type; double momentum, wd; };
  for (Case c : {Case{"SGD", 0, 0}, Case{"SGD", 0.9, 1e-3}, Case{"Nesterov", 0.9, 5e-4}, Case{"Adam", 0.9, 1e-2},
                 Case{"AdamW", 0.9, 1e-2}, Case{"AdaGrad", 0, 1e-3}, Case{"RMSProp", 0, 1e-3},
                 Case{"AdaDelta", 0.95, 1e-3}}) {
    for (double clip : {0.0, 1.0, 1e6}) {  // off, active (norms are ~6), inactive
      INFO(c.type << " momentum " << c.momentum << " weight decay " << c.wd << " clip " << clip);
      compare(solver(c.type, c.momentum, c.wd, clip), gpu);
    }
  }
}

MMF_CUDA_TEST("optimizer with parameters on the CPU and on CUDA") {
  std::vector<Device> mixed = {Device::cuda(0), Device::cpu(), Device::cuda(0), Device::cpu(), Device::cuda(0)};
  for (const char* type : {"SGD", "Adam", "AdaDelta"}) {
    INFO(type);
    compare(solver(type, std::string(type) == "AdaDelta" ? 0.95 : 0.9, 1e-3, 1.0), mixed);
  }
}
