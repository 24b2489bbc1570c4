// What one training iteration does: the Game that the one training loop (core/solver.h) drives.
//
// The Solver owns the lifecycle of a run (display and progress, the metrics log and the curve,
// tests, snapshots held until shown good, resume, signals, data parallelism); a Game owns the
// work of an iteration over the Solver's players: which nets forward, which losses, which
// optimizers step, what the display shows. Supervised training (Caffe's solver) is the
// one-player game of make_supervised_game(); the conditional GAN of pix2pix
// (core/adversarial.h, `adversarial {}`) is a two-player one. Another schedule (a teacher and a
// student, several discriminators, alternating blocks) is another Game over the same loop.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/net.h"
#include "core/optimizer.h"

namespace mmfuse {

class DataParallel;

// One net of a run, with its optimizer and its TEST nets.
struct Player {
  // "" for the one net of a solver without `player`s (Caffe's files and names); else the
  // `player`'s name, which scopes its files, parameters and logged layers.
  std::string name;
  proto::SolverParameter optim;  // the solver's settings with this player's overrides
  std::unique_ptr<Net> net;      // the TRAIN net
  struct Test {
    std::unique_ptr<Net> net;  // a TEST net sharing the TRAIN net's parameters
    int iterations = 0;        // its batches per test (test_iter)
  };
  std::vector<Test> tests;
  std::unique_ptr<Optimizer> optimizer;

  double lr(int64_t iter) const { return learning_rate(optim, iter); }
  // "<name>/" ("" for the unnamed net): the prefix of its history slots in a solver state and
  // of its layers in the metrics log.
  std::string scope() const { return name.empty() ? name : name + "/"; }
};

// One iteration's report: the loss the display smooths, the figures it shows and logs (filled
// on display iterations), the gradient norm it logs, and `bad`: what was not finite (nothing
// was applied after it).
struct GameStep {
  double loss = 0;
  std::vector<std::pair<std::string, double>> outputs;
  double grad_norm = 0;
  std::string bad;
};

class Game {
 public:
  virtual ~Game() = default;
  // The first phase of iteration `iter` (batch `iter` of the nets' data layers): the forwards
  // and backwards, with the updates that come before the last gradients are made (a GAN's
  // discriminator steps). apply = false is the check of a snapshot's weights: losses and
  // gradients only, no update (the caller then checks every player's gradients, clears them
  // and puts the weights back). show: fill `outputs`.
  virtual GameStep forward_backward(std::vector<Player>& players, int64_t iter, bool apply, bool show) = 0;
  // The second phase, once the gradients are final (averaged over the ranks under data
  // parallelism): the remaining updates; sets step.grad_norm, or step.bad. The caller clears
  // every gradient after it.
  virtual void update(std::vector<Player>& players, int64_t iter, GameStep& step) = 0;
  // After a test of the TEST nets (e.g. image grids); `prefix` is <snapshot_prefix>_iter_N.
  virtual void after_test(std::vector<Player>& /*players*/, const std::string& /*prefix*/) {}
  // What trains, for the solver's first line ("Adam, lr_policy fixed, base_lr 0.01").
  virtual std::string describe() const = 0;
};

// "NaN" or "Inf" for a non-finite value.
const char* non_finite(double v);
// "" when every gradient `optimizer` holds is finite, else "the gradient of <param> is NaN".
std::string bad_gradient(const Optimizer& optimizer);

// Caffe's iteration for one net (`param`: the solver's settings): iter_size forwards and
// backwards over sub-batches, each loss scaled by 1/iter_size, then one optimizer step.
// `data_parallel` (or null): the last sub-batch's backward starts its gradient buckets.
std::unique_ptr<Game> make_supervised_game(const proto::SolverParameter& param, DataParallel* data_parallel);

}  // namespace mmfuse
