#include "core/optimizer.h"

#include <algorithm>
#include <cmath>

#include "base/optimizer_rules.h"
#include "core/cpu/fast_math.h"
#include "core/cpu/parallel.h"
#include "core/ops/common.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/optimizer.h"
#endif

namespace mmfuse {

double learning_rate(const proto::SolverParameter& s, int64_t iter) {
  const std::string& policy = s.lr_policy();
  double base = s.base_lr(), lr = base;
  double gamma = s.gamma(), power = s.power();
  if (policy == "fixed") {
    lr = base;
  } else if (policy == "step") {
    MMF_CHECK(s.stepsize() > 0, Error, "lr_policy step needs stepsize > 0");
    lr = base * std::pow(gamma, std::floor(static_cast<double>(iter) / s.stepsize()));
  } else if (policy == "exp") {
    lr = base * std::pow(gamma, static_cast<double>(iter));
  } else if (policy == "inv") {
    lr = base * std::pow(1 + gamma * static_cast<double>(iter), -power);
  } else if (policy == "multistep") {
    int steps = 0;
    for (int v : s.stepvalue()) steps += iter >= v ? 1 : 0;
    if (s.step_factor_size() > 0) {
      MMF_CHECK(s.step_factor_size() == s.stepvalue_size(), Error, "lr_policy multistep: ",
                s.step_factor_size(), " step_factor values for ", s.stepvalue_size(), " stepvalue values");
      lr = steps == 0 ? base : base * s.step_factor(steps - 1);
    } else {
      lr = base * std::pow(gamma, steps);
    }
  } else if (policy == "poly") {
    MMF_CHECK(s.max_iter() > 0, Error, "lr_policy poly needs max_iter > 0");
    lr = base * std::pow(std::max(0.0, 1 - static_cast<double>(iter) / s.max_iter()), power);
  } else if (policy == "sigmoid") {
    lr = base / (1 + std::exp(-gamma * (static_cast<double>(iter) - s.stepsize())));
  } else if (policy == "cosine") {
    MMF_CHECK(s.max_iter() > 0, Error, "lr_policy cosine needs max_iter > 0");
    double t = std::min(1.0, static_cast<double>(iter) / s.max_iter());
    lr = s.min_lr() + (base - s.min_lr()) * 0.5 * (1 + std::cos(M_PI * t));
  } else {
    throw Error("unknown lr_policy '" + policy +
                "' (fixed, step, exp, inv, multistep, poly, sigmoid, cosine)");
  }
  if (s.warmup_iter() > 0 && iter < s.warmup_iter())
    lr *= static_cast<double>(iter + 1) / s.warmup_iter();
  return lr;
}

namespace {

// The state slots of each type: SGD {velocity}, AdaGrad / RMSProp {h}, AdaDelta {h, u},
// Adam {m, v}.
int slot_count(const std::string& type) {
  return type == "Adam" || type == "AdamW" || type == "AdaDelta" ? 2 : 1;
}

bool is_adaptive(const std::string& type) { return type == "AdaGrad" || type == "RMSProp" || type == "AdaDelta"; }

rules::Adaptive::Kind adaptive_kind(const std::string& type) {
  return type == "AdaGrad" ? rules::Adaptive::adagrad
                           : type == "RMSProp" ? rules::Adaptive::rmsprop : rules::Adaptive::adadelta;
}

}  // namespace

void check_solver_type(const proto::SolverParameter& s) {
  const std::vector<std::string> types = {"SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam", "AdamW"};
  MMF_CHECK(std::find(types.begin(), types.end(), s.type()) != types.end(), Error, "unknown solver type '",
            s.type(), "' (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam, AdamW)");
  MMF_CHECK(s.regularization_type() == "L2", Error, "regularization_type '", s.regularization_type(),
            "' is not supported (L2)");
  // Caffe's constructor checks of the adaptive solvers.
  MMF_CHECK(!(s.type() == "AdaGrad" || s.type() == "RMSProp") || s.momentum() == 0, Error, "momentum cannot be used with ",
            s.type(), " (got ", s.momentum(), "; set it to 0 or leave it out)");
  MMF_CHECK(s.rms_decay() >= 0 && s.rms_decay() <= 1, Error, "rms_decay must be in [0, 1], got ", s.rms_decay());
}

Optimizer::Optimizer(const proto::SolverParameter& s, std::vector<OptimParam> params)
    : type_(s.type()),
      momentum_(s.momentum()),
      beta2_(s.momentum2()),
      eps_(s.delta()),
      weight_decay_(s.weight_decay()),
      clip_(s.clip_gradients()),
      params_(std::move(params)) {
  check_solver_type(s);
  bool adam = type_ == "Adam" || type_ == "AdamW";
  if (adam && !s.has_momentum()) momentum_ = 0.9;  // beta1, as PyTorch's default
  if (type_ == "RMSProp") decay_ = s.rms_decay();
  if (type_ == "AdaDelta") decay_ = s.momentum();  // Caffe's AdaDelta decays by `momentum`
  for (const OptimParam& p : params_) {
    MMF_CHECK(is_floating(p.value.dtype()), Error, "optimizer: parameter ", p.name, " is ", p.value.str());
    std::vector<Tensor> slots;
    for (int i = 0; i < slot_count(type_); ++i) slots.push_back(Tensor::zeros(p.value.shape(), p.value.dtype(), p.value.device()));
    slots_.push_back(std::move(slots));
  }
}

void Optimizer::zero_grad() {
  for (OptimParam& p : params_) p.value.set_grad(Tensor());
}

namespace {

constexpr int64_t kNormBlock = 8192;     // gradient elements per partial sum of the squared norm
constexpr int kNormLanes = 8;

// The sum of squares of one block: element i goes to lane i % kNormLanes, each lane summed in
// order, the lanes then folded as a fixed tree. Eight independent chains instead of one, so the
// loop runs at the adder's throughput, not its latency (it vectorises), and the result depends
// on nothing but the block's values.
template <typename T>
MMF_SIMD_INLINE inline double block_sumsq(const T* p, int64_t n) {
  double lane[kNormLanes] = {};
  int64_t i = 0;
  for (; i + kNormLanes <= n; i += kNormLanes)
    for (int l = 0; l < kNormLanes; ++l) lane[l] += static_cast<double>(p[i + l]) * static_cast<double>(p[i + l]);
  for (int l = 0; i < n; ++i, ++l) lane[l] += static_cast<double>(p[i]) * static_cast<double>(p[i]);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// The CPU parameters' work, cut into fixed blocks of kNormBlock elements of each gradient in
// turn: the squared norm is the blocks' partial sums added in parameter and block order (the
// same bits for any thread count), and the update runs block by block. One parallel loop over
// every block of every parameter, instead of one per parameter.
struct Block {
  size_t param;
  int64_t begin, end;
};

std::vector<Block> cpu_blocks(const std::vector<size_t>& params, const std::vector<OptimParam>& all) {
  std::vector<Block> blocks;
  for (size_t k : params) {
    int64_t n = all[k].value.numel();
    for (int64_t b = 0; b < n; b += kNormBlock) blocks.push_back({k, b, std::min(n, b + kNormBlock)});
  }
  return blocks;
}

double fold(const std::vector<double>& partial) {
  double sum = 0;
  for (double v : partial) sum += v;
  return sum;
}

}  // namespace

double Optimizer::step(double lr) {
  // Squares of CPU gradients are summed on the host; CUDA gradients (one device per
  // optimizer) leave fixed partial sums on their device, folded there with the host's share.
  std::vector<size_t> cpu_params;  // the CPU parameters with a gradient
  std::vector<Tensor> grads(params_.size());
  [[maybe_unused]] int device = -1;  // the CUDA device of the parameters, if any
  [[maybe_unused]] bool any_cpu = false;
  [[maybe_unused]] int64_t partial_count = 0;
  for (size_t k = 0; k < params_.size(); ++k) {
    const OptimParam& p = params_[k];
    Tensor g = p.value.grad();
    if (!g.defined()) continue;
    MMF_CHECK(g.device() == p.value.device() && g.dtype() == p.value.dtype() && g.shape() == p.value.shape(), Error,
              "optimizer: parameter ", p.name, " is ", p.value.str(), " but its gradient is ", g.str());
    if (g.is_cuda()) {
#ifdef MMFUSE_WITH_CUDA
      MMF_CHECK(device < 0 || device == g.device().index, Error, "optimizer: parameters on cuda:", device, " and on ",
                g.device().str(), " (one device per optimizer)");
      device = g.device().index;
      partial_count += cuda::sumsq_partials(g.numel());
      continue;
#else
      ops::no_cuda_kernel("optimizer step");
#endif
    }
    any_cpu = true;
    cpu_params.push_back(k);
    grads[k] = g;
  }
  const std::vector<Block> blocks = cpu_blocks(cpu_params, params_);
  std::vector<double> partial(blocks.size());
  // Each block's loop runs through simd_range (core/cpu/fast_math.h): AVX2 code where the CPU
  // has it, the same IEEE operations on every element as the baseline (the same bits).
  auto block_norm = [&](const Block& b, size_t i) {
    const Tensor& g = grads[b.param];
    ops::dispatch_floating("optimizer", g.dtype(), [&]<typename T>() {
      const T* gr = g.data<T>();
      auto range = [&](int64_t begin, int64_t end) MMF_SIMD_INLINE { partial[i] = block_sumsq<T>(gr + begin, end - begin); };
      cpu::simd_range(range, b.begin, b.end);
    });
  };
  // Without clipping nothing waits for the norm before the update (CUDA parameters aside, whose
  // device folds the host's share first): the CPU blocks then sum their squares in the update's
  // pass, reading each gradient once. The same partial sums either way.
  const bool fused = clip_ <= 0 && device < 0;
  if (!fused)
    cpu::parallel_for(static_cast<int64_t>(blocks.size()), 2, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i) block_norm(blocks[static_cast<size_t>(i)], static_cast<size_t>(i));
    });
  double host_norm2 = fused ? 0.0 : fold(partial);
  double norm = std::sqrt(host_norm2);
  [[maybe_unused]] const double* device_scale = nullptr;
#ifdef MMFUSE_WITH_CUDA
  Tensor norm_scale;  // [norm, clip scale] on the device: the update kernels read the scale there
  if (device >= 0) {
    Device dev = Device::cuda(device);
    Tensor partials = Tensor::empty({std::max<int64_t>(partial_count, 1)}, DType::f64, dev);
    int64_t at = 0;
    for (const OptimParam& p : params_) {
      Tensor g = p.value.grad();
      if (!g.defined() || !g.is_cuda()) continue;
      ops::dispatch_floating("optimizer", g.dtype(), [&]<typename T>() {
        cuda::grad_sumsq<T>(g.data<T>(), g.numel(), partials.data<double>() + at, device);
      });
      at += cuda::sumsq_partials(g.numel());
    }
    norm_scale = Tensor::empty({2}, DType::f64, dev);
    cuda::finish_grad_norm(partials.data<double>(), partial_count, host_norm2, clip_, norm_scale.data<double>(),
                           device);
    device_scale = norm_scale.data<double>() + 1;
    // CPU parameters need the global norm before their update: with parameters on both
    // sides the step synchronises here instead of at the end.
    if (any_cpu) norm = norm_scale.to_vector<double>()[0];
  }
#endif
  double grad_scale = (clip_ > 0 && norm > clip_) ? clip_ / norm : 1.0;
  ++steps_;
  bool adam = type_ == "Adam" || type_ == "AdamW";
  bool nesterov = type_ == "Nesterov";
  double bias1 = 1 - std::pow(momentum_, static_cast<double>(steps_));
  double bias2 = 1 - std::pow(beta2_, static_cast<double>(steps_));

#ifdef MMFUSE_WITH_CUDA
  for (size_t k = 0; k < params_.size(); ++k) {  // CUDA parameters: one fused kernel each, the same rules
    const OptimParam& p = params_[k];
    Tensor g = p.value.grad();
    if (!g.defined() || p.lr_mult == 0 || !p.value.is_cuda()) continue;
    double plr = lr * p.lr_mult, wd = weight_decay_ * p.decay_mult;
    const rules::Sgd sgd{plr, wd, momentum_, nesterov};
    const rules::Adam adam_rule{plr, wd, momentum_, beta2_, eps_, bias1, bias2, type_ == "AdamW"};
    const rules::Adaptive adaptive_rule{adaptive_kind(type_), plr, wd, decay_, eps_};
    ops::dispatch_floating("optimizer", p.value.dtype(), [&]<typename T>() {
      const int64_t n = p.value.numel();
      if (is_adaptive(type_))
        cuda::adaptive_update<T>(p.value.data<T>(), g.data<T>(), slots_[k][0].data<T>(),
                                 slots_[k].size() > 1 ? slots_[k][1].data<T>() : nullptr, n, adaptive_rule,
                                 device_scale, device);
      else if (!adam)
        cuda::sgd_update<T>(p.value.data<T>(), g.data<T>(), slots_[k][0].data<T>(), n, sgd, device_scale, device);
      else
        cuda::adam_update<T>(p.value.data<T>(), g.data<T>(), slots_[k][0].data<T>(), slots_[k][1].data<T>(), n,
                             adam_rule, device_scale, device);
    });
  }
#endif
  // The CPU updates, element by element, so any cut into blocks and threads gives the same
  // bits; the rules are copied into each block so that their fields stay in registers.
  auto block_update = [&](const Block& b) {
    const OptimParam& p = params_[b.param];
    if (p.lr_mult == 0) return;
    double plr = lr * p.lr_mult, wd = weight_decay_ * p.decay_mult;
    const std::vector<Tensor>& slots = slots_[b.param];
    ops::dispatch_floating("optimizer", p.value.dtype(), [&]<typename T>() {
      T* w = p.value.data<T>();
      const T* gr = grads[b.param].data<T>();
      if (is_adaptive(type_)) {
        const rules::Adaptive rule{adaptive_kind(type_), plr, wd, decay_, eps_};
        T* h = slots[0].data<T>();
        T* u = slots.size() > 1 ? slots[1].data<T>() : nullptr;
        auto range = [&](int64_t begin, int64_t end) MMF_SIMD_INLINE {
          T *__restrict wr = w, *__restrict hr = h, *__restrict ur = u;
          const T* __restrict grr = gr;
          // One loop per kind, as SGD's per mode below.
          auto run = [&](rules::Adaptive::Kind kind) MMF_SIMD_INLINE {
            const rules::Adaptive r{kind, rule.lr, rule.weight_decay, rule.decay, rule.eps};
            for (int64_t i = begin; i < end; ++i) r.update(wr, grr, hr, ur, i, grad_scale);
          };
          if (rule.kind == rules::Adaptive::adagrad) run(rules::Adaptive::adagrad);
          else if (rule.kind == rules::Adaptive::rmsprop) run(rules::Adaptive::rmsprop);
          else run(rules::Adaptive::adadelta);
        };
        cpu::simd_range(range, b.begin, b.end);
      } else if (!adam) {
        const rules::Sgd rule{plr, wd, momentum_, nesterov};
        T* v = slots[0].data<T>();
        auto range = [&](int64_t begin, int64_t end) MMF_SIMD_INLINE {
          T *__restrict wr = w, *__restrict vr = v;
          const T* __restrict grr = gr;
          // One loop per mode, so that the rule's branches fold away and the loop vectorises (with
          // the mode tested inside, GCC leaves it scalar).
          auto run = [&](const rules::Sgd& r) MMF_SIMD_INLINE {
            for (int64_t i = begin; i < end; ++i) r.update(wr, grr, vr, i, grad_scale);
          };
          if (rule.momentum == 0) run({rule.lr, rule.weight_decay, 0.0, false});
          else if (rule.nesterov) run({rule.lr, rule.weight_decay, rule.momentum, true});
          else run({rule.lr, rule.weight_decay, rule.momentum, false});
        };
        cpu::simd_range(range, b.begin, b.end);
      } else {
        const rules::Adam rule{plr, wd, momentum_, beta2_, eps_, bias1, bias2, type_ == "AdamW"};
        T* m = slots[0].data<T>();
        T* v = slots[1].data<T>();
        auto range = [&](int64_t begin, int64_t end) MMF_SIMD_INLINE {
          T *__restrict wr = w, *__restrict mr = m, *__restrict vr = v;
          const T* __restrict grr = gr;
          for (int64_t i = begin; i < end; ++i) rule.update(wr, grr, mr, vr, i, grad_scale);
        };
        cpu::simd_range(range, b.begin, b.end);
      }
    });
  };
  cpu::parallel_for(static_cast<int64_t>(blocks.size()), 2, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i) {
      const Block& b = blocks[static_cast<size_t>(i)];
      if (fused) block_norm(b, static_cast<size_t>(i));
      block_update(b);
    }
  });
  if (fused) norm = std::sqrt(fold(partial));
#ifdef MMFUSE_WITH_CUDA
  // Every update is queued: the step's one synchronisation, to report the norm.
  if (device >= 0 && !any_cpu) norm = norm_scale.to_vector<double>()[0];
#endif
  return norm;
}

void Optimizer::save_state(proto::SolverState& state) const {
  state.clear_history();
  for (size_t k = 0; k < params_.size(); ++k)
    for (size_t s = 0; s < slots_[k].size(); ++s) {
      proto::BlobProto* b = state.add_history();
      b->set_name(params_[k].name + "." + std::to_string(s));
      for (int64_t d : slots_[k][s].shape()) b->mutable_shape()->add_dim(d);
      if (slots_[k][s].dtype() == DType::f64)
        for (double x : slots_[k][s].to_vector<double>()) b->add_double_data(x);
      else
        for (float x : slots_[k][s].to_vector<float>()) b->add_data(x);
    }
  state.set_current_step(static_cast<int32_t>(steps_));
  state.set_type(type_);
}

void Optimizer::load_state(const proto::SolverState& state) {
  // A state without a type predates the field (and AdaGrad, RMSProp, AdaDelta): its slot names
  // tell SGD (one) from Adam (two).
  bool adam = slot_count(type_) == 2;
  MMF_CHECK(!state.has_type() || state.type() == type_, IOError, "solver state written by a ", state.type(),
            " solver; this solver is ", type_, " (its history does not carry over: fine-tune from its weights)");
  MMF_CHECK(state.current_step() >= 0, IOError, "solver state: current_step ", state.current_step(),
            " is negative");
  std::map<std::string, const proto::BlobProto*> by_name;
  for (const proto::BlobProto& b : state.history()) {
    MMF_CHECK(by_name.emplace(b.name(), &b).second, IOError, "solver state holds history ", b.name(), " twice");
    MMF_CHECK(adam || b.name().size() < 2 || b.name().compare(b.name().size() - 2, 2, ".1") != 0, IOError,
              "solver state holds Adam moments (", b.name(), "); this solver is ", type_,
              " (its history does not carry over)");
  }
  for (size_t k = 0; k < params_.size(); ++k)
    for (size_t s = 0; s < slots_[k].size(); ++s) {
      std::string name = params_[k].name + "." + std::to_string(s);
      auto it = by_name.find(name);
      MMF_CHECK(it != by_name.end(), IOError, "solver state has no history for ", name);
      const proto::BlobProto& b = *it->second;
      Shape shape(b.shape().dim().begin(), b.shape().dim().end());
      MMF_CHECK(shape == slots_[k][s].shape(), IOError, "solver state: ", name, " has shape ", shape_str(shape),
                ", the parameter has ", shape_str(slots_[k][s].shape()));
      if (b.double_data_size() > 0) {
        std::vector<double> data(b.double_data().begin(), b.double_data().end());
        slots_[k][s].copy_(Tensor::from_vector(data, shape));
      } else {
        std::vector<float> data(b.data().begin(), b.data().end());
        slots_[k][s].copy_(Tensor::from_vector(data, shape));
      }
    }
  steps_ = state.current_step();
}

}  // namespace mmfuse
