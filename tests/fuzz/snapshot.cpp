// Fuzzes snapshot reading as `mmfuse train --weights W` and `--snapshot S.solverstate` do
// (core/snapshot.h, core/optimizer.h): the bytes parsed as proto::NetWeights and copied into a
// small net (by name, then strictly), and parsed as proto::SolverState and loaded into an SGD
// and an Adam optimizer over that net's parameters. After each load one training step runs
// (forward, backward, update), so that a tensor accepted with the wrong shape or dtype shows.
// The net is snapshot_net.prototxt (TEST phase: Input instead of the synthetic data layer); the
// seed corpus holds real snapshots of it (docs/reliability.md, "Sanitizers and fuzzing").
#include <filesystem>
#include <memory>

#include <google/protobuf/stubs/logging.h>

#include "core/net.h"
#include "core/optimizer.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "tests/fuzz/fuzz.h"

namespace {

using namespace mmfuse;

void train_step(Net& net, Optimizer* optimizer) {
  Generator gen(7);
  std::map<std::string, Tensor> inputs;
  for (const auto& [name, shape] : net.inputs())
    inputs[name] = name == "label" ? Tensor::zeros(shape, DType::i32) : Tensor::randn(shape, gen);
  net.forward(inputs);
  net.loss().backward();
  if (optimizer) {
    optimizer->step(0.01);
    optimizer->zero_grad();
  }
}

std::unique_ptr<Optimizer> make_optimizer(const Net& net, const char* type) {
  proto::SolverParameter solver;
  solver.set_type(type);
  solver.set_momentum(0.9);
  std::vector<OptimParam> params;
  for (const Param& p : net.learnable_params()) params.push_back({p.name, p.value, p.lr_mult, p.decay_mult});
  return std::make_unique<Optimizer>(solver, params);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // "invalid UTF-8" on every other input
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  proto::NetWeights weights;
  if (weights.ParseFromArray(data, static_cast<int>(size))) {
    for (bool strict : {false, true}) {
      Net net(fuzz::snapshot_net_param(), proto::TEST, Device::cpu(), 1);
      if (fuzz::expect_ok_or_error([&] { copy_weights(net, weights, strict); })) {
        fuzz::expect_ok_or_error([&] { (void)copy_weights(net, weights).table(); });
        train_step(net, nullptr);
      }
    }
  }
  proto::SolverState state;
  if (state.ParseFromArray(data, static_cast<int>(size))) {
    for (const char* type : {"SGD", "Adam"}) {
      Net net(fuzz::snapshot_net_param(), proto::TEST, Device::cpu(), 1);
      auto optimizer = make_optimizer(net, type);
      if (!fuzz::expect_ok_or_error([&] { optimizer->load_state(state); })) continue;
      net.generator().set_state(state.rng_seed(), state.rng_offset());
      train_step(net, optimizer.get());
      proto::SolverState saved;
      optimizer->save_state(saved);
    }
  }
  return 0;
}
