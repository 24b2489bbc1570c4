// Update rules against hand-computed steps and the scalar rules, lr policies, clipping, state round trip.
#include <cmath>
#include <cstring>

#include "base/optimizer_rules.h"
#include "core/cpu/fast_math.h"
#include "core/ops/common.h"
#include "core/optimizer.h"
#include "tests/gradcheck.h"

using namespace mmfuse;

namespace {
proto::SolverParameter solver(const std::string& type, double momentum, double wd) {
  proto::SolverParameter s;
  s.set_type(type);
  s.set_momentum(static_cast<float>(momentum));
  s.set_weight_decay(static_cast<float>(wd));
  return s;
}

OptimParam param(std::vector<double> values, double lr_mult = 1, double decay_mult = 1) {
  Tensor t = Tensor::from_vector(values, {static_cast<int64_t>(values.size())});
  t.set_requires_grad();
  return {"w", t, lr_mult, decay_mult};
}
}  // namespace

TEST_CASE("SGD with momentum and weight decay (PyTorch's rule)") {
  auto s = solver("SGD", 0.9, 0.1);
  Optimizer opt(s, {param({1.0, -2.0})});
  Tensor w = opt.params()[0].value;
  w.set_grad(Tensor::from_vector<double>({0.5, 0.5}, {2}));
  opt.step(0.1);
  // d = g + wd*w = (0.6, 0.3); v = d; w -= 0.1 v
  CHECK(w.to_vector<double>()[0] == doctest::Approx(1 - 0.06));
  CHECK(w.to_vector<double>()[1] == doctest::Approx(-2 - 0.03));
  w.set_grad(Tensor::from_vector<double>({0.0, 0.0}, {2}));
  opt.step(0.1);
  // d = wd*w = 0.094; v = 0.9*0.6 + 0.094 = 0.634; w = 0.94 - 0.0634
  CHECK(w.to_vector<double>()[0] == doctest::Approx(0.94 - 0.0634));
}

TEST_CASE("Nesterov, Adam and AdamW first steps") {
  {
    Optimizer opt(solver("Nesterov", 0.5, 0), {param({1.0})});
    Tensor w = opt.params()[0].value;
    w.set_grad(Tensor::from_vector<double>({2.0}, {1}));
    opt.step(0.1);  // v = 2; d = 2 + 0.5*2 = 3
    CHECK(w.item() == doctest::Approx(0.7));
  }
  {
    auto s = solver("Adam", 0.9, 0);
    Optimizer opt(s, {param({1.0})});
    Tensor w = opt.params()[0].value;
    w.set_grad(Tensor::from_vector<double>({3.0}, {1}));
    opt.step(0.01);  // first Adam step moves by lr * g/|g| (bias corrected) = 0.01
    CHECK(w.item() == doctest::Approx(0.99).epsilon(1e-6));
  }
  {
    auto s = solver("AdamW", 0.9, 0.5);
    Optimizer opt(s, {param({1.0})});
    Tensor w = opt.params()[0].value;
    w.set_grad(Tensor::from_vector<double>({3.0}, {1}));
    opt.step(0.01);  // decoupled: w *= 1 - 0.01*0.5, then -0.01
    CHECK(w.item() == doctest::Approx(0.995 - 0.01).epsilon(1e-6));
  }
}

TEST_CASE("lr_mult, decay_mult, clipping, params without gradient") {
  auto s = solver("SGD", 0, 0);
  s.set_clip_gradients(1.0);
  Optimizer opt(s, {param({0.0, 0.0}, 2.0), param({5.0}, 0.0)});
  Tensor a = opt.params()[0].value, b = opt.params()[1].value;
  a.set_grad(Tensor::from_vector<double>({3.0, 4.0}, {2}));  // norm 5 -> scaled to 1
  double norm = opt.step(0.1);
  CHECK(norm == doctest::Approx(5));
  CHECK(a.to_vector<double>()[0] == doctest::Approx(-0.2 * 0.6));
  CHECK(a.to_vector<double>()[1] == doctest::Approx(-0.2 * 0.8));
  CHECK(b.item() == 5);  // no gradient and lr_mult 0: untouched
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("learning-rate policies") {
  proto::SolverParameter s;
  s.set_base_lr(0.1f);
  s.set_gamma(0.5f);
  s.set_lr_policy("step");
  s.set_stepsize(10);
  CHECK(learning_rate(s, 9) == doctest::Approx(0.1));
  CHECK(learning_rate(s, 25) == doctest::Approx(0.025));
  s.set_lr_policy("multistep");
  s.add_stepvalue(5);
  s.add_stepvalue(8);
  CHECK(learning_rate(s, 4) == doctest::Approx(0.1));
  CHECK(learning_rate(s, 8) == doctest::Approx(0.025));
  s.add_step_factor(0.5f);
  s.add_step_factor(0.2f);
  CHECK(learning_rate(s, 6) == doctest::Approx(0.05));
  CHECK(learning_rate(s, 9) == doctest::Approx(0.02));
  s.add_step_factor(0.1f);
  CHECK_THROWS_AS(learning_rate(s, 9), Error);
  s.clear_step_factor();
  s.set_lr_policy("poly");
  s.set_power(2);
  s.set_max_iter(100);
  CHECK(learning_rate(s, 50) == doctest::Approx(0.025));
  s.set_lr_policy("cosine");
  s.set_min_lr(0.01f);
  CHECK(learning_rate(s, 0) == doctest::Approx(0.1));
  CHECK(learning_rate(s, 50) == doctest::Approx(0.055));
  CHECK(learning_rate(s, 100) == doctest::Approx(0.01));
  s.set_warmup_iter(10);
  CHECK(learning_rate(s, 0) == doctest::Approx(0.1 * 0.1));  // warm-up factor (0+1)/10
  CHECK(learning_rate(s, 4) == doctest::Approx(0.5 * (0.01 + 0.09 * 0.5 * (1 + std::cos(M_PI * 0.04)))));
  s.set_lr_policy("inv");
  s.set_warmup_iter(0);
  s.set_power(1);
  CHECK(learning_rate(s, 2) == doctest::Approx(0.1 / 2));
  s.set_lr_policy("bogus");
  CHECK_THROWS_AS(learning_rate(s, 0), Error);
}

TEST_CASE("optimizer state round-trips through SolverState") {
  auto s = solver("Adam", 0.9, 0.01);
  Optimizer a(s, {param({1.0, 2.0})}), b(s, {param({1.0, 2.0})});
  for (int i = 0; i < 3; ++i) {
    a.params()[0].value.set_grad(Tensor::from_vector<double>({0.3, -0.1 * i}, {2}));
    a.step(0.01);
  }
  proto::SolverState state;
  a.save_state(state);
  b.load_state(state);
  b.params()[0].value.copy_(a.params()[0].value);
  for (Optimizer* o : {&a, &b}) {
    o->params()[0].value.set_grad(Tensor::from_vector<double>({0.2, 0.2}, {2}));
    o->step(0.01);
  }
  CHECK(a.params()[0].value.to_vector<double>() == b.params()[0].value.to_vector<double>());
  proto::SolverState empty;
  CHECK_THROWS_AS(b.load_state(empty), IOError);
  CHECK_THROWS_AS(Optimizer(solver("RMSprop2", 0, 0), {}), Error);
}

TEST_CASE("CPU step: the norm is the blocked sum, the same with and without clipping and for any thread count") {
  // Without clipping the norm's blocks are summed in the update's pass; with a clip that never
  // bites, in a pass of their own: the same partial sums, weights and norm to the bit. Sizes
  // around the 8192-element blocks and eight lanes; one float64 parameter; lr_mult 0 skipped.
  Generator gen(21);
  std::vector<Tensor> grads = {Tensor::randn({8192 * 3 + 5}, gen), Tensor::randn({7}, gen),
                               Tensor::randn({8192}, gen, 0, 1, DType::f64), Tensor::randn({40000}, gen)};
  std::vector<Tensor> start;
  for (const Tensor& g : grads) start.push_back(Tensor::randn(g.shape(), gen, 0, 1, g.dtype()));
  auto run = [&](double clip, const std::string& type) {
    auto s = solver(type, 0.9, 1e-3);
    s.set_clip_gradients(static_cast<float>(clip));
    std::vector<OptimParam> ps;
    for (size_t k = 0; k < start.size(); ++k) ps.push_back({std::to_string(k), start[k].clone(), k == 1 ? 0.0 : 1.0, 1});
    Optimizer opt(s, ps);
    TensorList out;
    for (int step = 0; step < 2; ++step) {
      for (size_t k = 0; k < ps.size(); ++k) ps[k].value.set_grad(grads[k]);
      out.push_back(Tensor::from_vector<double>({opt.step(0.01)}, {1}));
    }
    for (const OptimParam& p : ps) out.push_back(p.value);
    return out;
  };
  for (const std::string type : {"SGD", "Adam"}) {
    CAPTURE(type);
    TensorList fused = testing::check_same_bits_for_thread_counts([&] { return run(0, type); }, "norm, weights");
    TensorList apart = testing::check_same_bits_for_thread_counts([&] { return run(1e30, type); }, "norm, weights");
    REQUIRE(fused.size() == apart.size());
    for (size_t i = 0; i < fused.size(); ++i) CHECK(fused[i].to(DType::f64).to_vector<double>() == apart[i].to(DType::f64).to_vector<double>());
    // The norm itself: the square root of the sum of squares, to float64 rounding.
    double want = 0;
    for (const Tensor& g : grads)
      for (double v : g.to(DType::f64).to_vector<double>()) want += v * v;
    CHECK(fused[0].item() == doctest::Approx(std::sqrt(want)).epsilon(1e-12));
  }
}

TEST_CASE("CPU step: AVX2 and baseline loops give the same bits as the scalar rules, every solver type") {
  // The update loops run through simd_range (vectorised, AVX2 where the CPU has it); the SGD
  // loop is split by mode (no momentum, momentum, Nesterov). Each must equal the rule applied
  // element by element here, in plain code, to the bit. Float32 and float64, sizes around the
  // 8192-element blocks and the vector widths; three steps, so that the state is read back.
  Generator gen(22);
  struct Case {
    std::string type;
    double momentum;
  };
  const std::vector<Case> cases = {{"SGD", 0}, {"SGD", 0.9}, {"Nesterov", 0.9}, {"Adam", 0.9}, {"AdamW", 0.9},
                                   {"AdaGrad", 0}, {"RMSProp", 0}, {"AdaDelta", 0.95}};
  const std::vector<Tensor> start = {Tensor::randn({8192 + 13}, gen), Tensor::randn({37}, gen, 0, 1, DType::f64)};
  std::vector<std::vector<Tensor>> grads;
  for (int step = 0; step < 3; ++step) {
    grads.emplace_back();
    for (const Tensor& w : start) grads.back().push_back(Tensor::randn(w.shape(), gen, 0, 1, w.dtype()));
  }
  constexpr double kLr = 0.01, kWd = 1e-3;
  for (const Case& c : cases) {
    CAPTURE(c.type);
    CAPTURE(c.momentum);
    auto run = [&] {
      auto s = solver(c.type, c.momentum, kWd);
      if (c.type == "RMSProp") s.set_rms_decay(0.9f);
      std::vector<OptimParam> ps;
      for (size_t k = 0; k < start.size(); ++k) ps.push_back({std::to_string(k), start[k].clone(), 1, 1});
      Optimizer opt(s, ps);
      for (const auto& step_grads : grads) {
        for (size_t k = 0; k < ps.size(); ++k) ps[k].value.set_grad(step_grads[k]);
        opt.step(kLr);
      }
      TensorList out;
      for (const OptimParam& p : ps) out.push_back(p.value);
      return out;
    };
    TensorList vectorised = run();
    cpu::simd_avx2_allowed() = false;
    TensorList baseline = run();
    cpu::simd_avx2_allowed() = true;
    // The scalar reference: the same rule, element by element, state in the parameter's type.
    // The solver's fields are float: the rules see their float values.
    const double momentum = static_cast<float>(c.momentum), wd = static_cast<float>(kWd);
    const double beta2 = 0.999f, eps = 1e-8f, rms_decay = 0.9f;
    for (size_t k = 0; k < start.size(); ++k) {
      CAPTURE(k);
      ops::dispatch_floating("test", start[k].dtype(), [&]<typename T>() {
        std::vector<T> w = start[k].to_vector<T>(), a(w.size()), b(w.size());
        for (size_t step = 0; step < grads.size(); ++step) {
          std::vector<T> g = grads[step][k].to_vector<T>();
          const double t = static_cast<double>(step + 1);
          for (int64_t i = 0; i < static_cast<int64_t>(w.size()); ++i) {
            if (c.type == "SGD" || c.type == "Nesterov")
              rules::Sgd{kLr, wd, momentum, c.type == "Nesterov"}.update(w.data(), g.data(), a.data(), i, 1.0);
            else if (c.type == "Adam" || c.type == "AdamW")
              rules::Adam{kLr, wd, momentum, beta2, eps, 1 - std::pow(momentum, t), 1 - std::pow(beta2, t),
                          c.type == "AdamW"}
                  .update(w.data(), g.data(), a.data(), b.data(), i, 1.0);
            else
              rules::Adaptive{c.type == "AdaGrad" ? rules::Adaptive::adagrad
                              : c.type == "RMSProp" ? rules::Adaptive::rmsprop
                                                    : rules::Adaptive::adadelta,
                              kLr, wd, c.type == "RMSProp" ? rms_decay : momentum, eps}
                  .update(w.data(), g.data(), a.data(), b.data(), i, 1.0);
          }
        }
        std::vector<T> got = vectorised[k].to_vector<T>(), got_baseline = baseline[k].to_vector<T>();
        CHECK(std::memcmp(got.data(), w.data(), w.size() * sizeof(T)) == 0);
        CHECK(std::memcmp(got_baseline.data(), w.data(), w.size() * sizeof(T)) == 0);
      });
    }
  }
}
