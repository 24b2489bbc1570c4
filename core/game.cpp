#include "core/game.h"

#include <cmath>

#include "base/format.h"
#include "core/data_parallel.h"
#include "core/ops.h"

namespace mmfuse {

const char* non_finite(double v) { return std::isnan(v) ? "NaN" : "Inf"; }

std::string bad_gradient(const Optimizer& optimizer) {
  for (const OptimParam& p : optimizer.params()) {
    Tensor g = p.value.grad();
    if (!g.defined()) continue;
    Tensor g64 = g.to(DType::f64);
    double sq = sum(mul(g64, g64)).item();
    if (!std::isfinite(sq)) return "the gradient of " + p.name + " is " + non_finite(sq);
  }
  return "";
}

namespace {

double mean_of(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

class SupervisedGame : public Game {
 public:
  SupervisedGame(const proto::SolverParameter& param, DataParallel* data_parallel)
      : param_(param), data_parallel_(data_parallel) {}

  std::string describe() const override {
    return param_.type() + ", lr_policy " + param_.lr_policy() + ", base_lr " + format_number("%g", param_.base_lr());
  }

  GameStep forward_backward(std::vector<Player>& players, int64_t iter, bool apply, bool show) override {
    Player& player = players[0];
    Net& net = *player.net;
    const int iter_size = param_.iter_size();
    GameStep r;
    for (int k = 0; k < iter_size; ++k) {
      auto blobs = net.forward({}, iter * iter_size + k);
      Tensor l = net.loss();
      double lv = l.item();
      if (!std::isfinite(lv)) {
        std::string culprit = "loss";
        for (const auto& [name, weight] : net.loss_weights())
          if (!std::isfinite(mean_of(blobs.at(name)))) {
            culprit = name;
            break;
          }
        r.bad = std::string("the loss is ") + non_finite(lv) + " (output '" + culprit + "')";
        return r;
      }
      r.loss += lv / iter_size;
      // The last sub-batch's backward makes the gradients final: their buckets start during it.
      if (data_parallel_ && apply && k == iter_size - 1) data_parallel_->start_backward(player.optimizer->params(), iter);
      if (l.requires_grad()) (l * (1.0 / iter_size)).backward();
      if (show) {
        const auto& outs = net.output_names();
        if (r.outputs.empty())
          for (const auto& n : outs) r.outputs.emplace_back(n, 0.0);
        for (size_t i = 0; i < outs.size(); ++i) r.outputs[i].second += mean_of(blobs.at(outs[i])) / iter_size;
      }
    }
    return r;
  }

  void update(std::vector<Player>& players, int64_t iter, GameStep& step) override {
    Player& player = players[0];
    step.grad_norm = player.optimizer->step(player.lr(iter));
    if (!std::isfinite(step.grad_norm))
      step.bad = std::string("the gradients are ") + non_finite(step.grad_norm) + " (their norm)";
  }

 private:
  proto::SolverParameter param_;
  DataParallel* data_parallel_;
};

}  // namespace

std::unique_ptr<Game> make_supervised_game(const proto::SolverParameter& param, DataParallel* data_parallel) {
  return std::make_unique<SupervisedGame>(param, data_parallel);
}

}  // namespace mmfuse
