// Parameter updates and learning-rate policies: the numeric half of the Solver, independent
// of the Net. Update rules follow PyTorch's optimisers (the AsymFusion and MMTM recipes are
// PyTorch's); the names and lr policies are Caffe's. The one place the two differ: Caffe's SGD
// puts the learning rate inside the momentum buffer (v = m v + lr g; w -= v), PyTorch's outside
// (v = m v + g; w -= lr v). They agree under a constant rate; we use PyTorch's, so a step in
// the rate takes effect at once instead of fading in through the buffer.
#pragma once
#include <string>
#include <vector>

#include "core/proto/mmfuse.pb.h"
#include "core/tensor.h"

namespace mmfuse {

// A parameter as the optimizer sees it: the tensor (whose .grad() holds the gradient) and
// its multipliers. The name keys the optimizer state in snapshots.
struct OptimParam {
  std::string name;
  Tensor value;
  double lr_mult = 1;
  double decay_mult = 1;
};

// Learning rate at `iter` under the solver's lr_policy, including warmup_iter (linear from
// base/warmup_iter up to the policy's rate).
double learning_rate(const proto::SolverParameter& solver, int64_t iter);

// Throws Error unless the solver's type and regularization_type are ones the Optimizer has.
void check_solver_type(const proto::SolverParameter& solver);

class Optimizer {
 public:
  // type: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam, AdamW (SolverParameter.type);
  // momentum, momentum2 (beta2), rms_decay, delta (epsilon), weight_decay and clip_gradients
  // from the solver (base/optimizer_rules.h has each formula).
  Optimizer(const proto::SolverParameter& solver, std::vector<OptimParam> params);

  // One update with learning rate `lr`, from the gradients currently in the params. A param
  // without a gradient is skipped (as PyTorch). Returns the global gradient L2 norm (before
  // clipping), which the train loop reports.
  double step(double lr);
  // Drops the gradients (set to undefined, so the next backward starts fresh).
  void zero_grad();

  // Optimizer state (momentum / moments, step count) for snapshots.
  void save_state(proto::SolverState& state) const;
  void load_state(const proto::SolverState& state);  // throws naming a missing or mis-shaped slot

  const std::vector<OptimParam>& params() const { return params_; }
  const std::string& type() const { return type_; }

 private:
  std::string type_;
  double momentum_, beta2_, eps_, weight_decay_, clip_;
  double decay_ = 0;  // RMSProp: rms_decay; AdaDelta: momentum
  std::vector<OptimParam> params_;
  std::vector<std::vector<Tensor>> slots_;  // per param: SGD {velocity}, Adam {m, v}, AdaDelta {h, u}, ...
  int64_t steps_ = 0;                       // Adam bias correction
};

}  // namespace mmfuse
