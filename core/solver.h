// The Solver: Caffe's training loop with PyTorch's numerics (core/optimizer.h), the one loop
// for every kind of training run.
//
// A Solver builds its players (core/game.h) from a SolverParameter: one unnamed player (the TRAIN
// net and the TEST nets sharing its parameters, Caffe's solver), or one per `player { }` (e.g. a
// GAN's generator and discriminator, docs/translation.md), each with its optimizer; and the
// Game that says what an iteration does with them (supervised: forward/backward over iter_size
// sub-batches, each loss scaled by 1/iter_size, one optimizer step; `adversarial {}`: the GAN
// schedule of core/adversarial.h); building one, with every setting checked first, is
// core/solver_setup.cpp. solve() (core/solver.cpp) then owns the rest of the run: each iteration's
// learning rate (the solver's lr_policy, for every player), display lines (a progress bar in
// place between them on a terminal), JSONL metrics, tests every test_interval, snapshots every
// `snapshot` iterations and at the end, a training-curve SVG, resume. SIGINT, SIGTERM and
// SIGUSR1 snapshot and stop, SIGHUP snapshots and continues (the handlers only set flags, read between
// iterations). A snapshot is written only from weights shown good: those of iteration k are
// captured in memory and go to disk once iteration k's forwards and backwards gave finite
// losses and finite gradients (at the end of a run, one checking pass of the game decides, and
// the nets are put back as they were). A NaN/Inf loss or gradient stops training; every
// snapshot on disk is then one the message can truly call good. The test phase is evaluate()
// (core/evaluate.h); the metrics log and the curve are core/metrics_log.h. Under an MPI
// launcher (dist::world().distributed()) a one-net solver trains data-parallel
// (core/data_parallel.h, docs/distributed.md): rank 0 alone prints, logs and snapshots.
//
// Snapshots: the one net's are Caffe's <prefix>_iter_N.weights and .solverstate; with `player`s,
// one <prefix>_iter_N.<player>.weights each (each loads alone into that player's net) and one
// .solverstate naming the first player's file, whose history slots are named
// "<player>/<layer>.<param>.<k>", with each player's step count and generator in "<player>/@state".
#pragma once
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/data_parallel.h"
#include "core/evaluate.h"
#include "core/game.h"
#include "core/metrics_log.h"
#include "core/net.h"
#include "core/optimizer.h"
#include "core/signals.h"
#include "core/snapshot.h"

namespace mmfuse {

// ---- the solver ------------------------------------------------------------------------------

// The CUDA devices this process sees (0 in a build without CUDA, or with no driver or GPU).
int visible_gpus();

struct SolverOptions {
  std::optional<Device> device;  // --gpu N; unset: solver_mode / device_id
  std::string precision;         // --precision; empty: the solver's
  int64_t max_iter = -1;         // --max-iter; -1: the solver's
  std::FILE* out = stdout;       // display, test results, notes
  bool handle_signals = true;    // install the handlers of core/signals.h during solve()
};

class Solver {
 public:
  // `solver_file`: where `param` came from ("" when built in code); net paths that do not exist
  // relative to the working directory are taken relative to its folder.
  Solver(const proto::SolverParameter& param, const std::string& solver_file = "", SolverOptions options = {});
  ~Solver();
  Solver(const Solver&) = delete;
  Solver& operator=(const Solver&) = delete;

  enum class Outcome { finished, interrupted, diverged };
  // Runs up to max_iter. `diverged`: message() names the iteration and what was not finite.
  Outcome solve();
  const std::string& message() const { return message_; }

  // Fine-tuning: copies weights by name into the (first) player's net, prints and returns the table.
  CopyReport load_weights(const std::string& path);
  // Resumes from a .solverstate (weights from its learned_net, or each player's file beside
  // it; optimizer history, iteration, the nets' generators, the smoothed-loss window). Every
  // field is checked first. The metrics log keeps the records of earlier iterations only (at
  // the first write).
  void restore(const std::string& solverstate_path);
  // Writes the snapshot of the current iteration now, unchecked; returns the solverstate path.
  std::string snapshot();
  // Runs every TEST net once (test_iter batches), prints and records the results.
  std::vector<TestResult> test_all();

  // The (first) player's TRAIN net; every player (its TEST nets in Player::tests).
  Net& net() { return *players_[0].net; }
  std::vector<Player>& players() { return players_; }
  Player& player(const std::string& name);
  int64_t iter() const { return iter_; }
  int64_t max_iter() const { return max_iter_; }
  const proto::SolverParameter& param() const { return param_; }
  const std::string& snapshot_prefix() const { return prefix_; }
  const std::string& metrics_path() const { return metrics_.path(); }
  std::string curve_path() const { return prefix_ + "_curve.svg"; }
  const std::string& last_snapshot() const { return last_snapshot_; }
  int64_t batch_size() const { return batch_size_; }
  // The curve's points: (iteration, smoothed loss) at each display, the earlier part of a
  // resumed run included.
  const std::vector<std::pair<double, double>>& train_curve() const { return curve_.train(); }
  double smoothed_loss() const;

 private:
  void build_net(const std::string& where);
  void build_players(const std::string& where);
  void display(const GameStep& step, double smoothed, double samples_per_s, double elapsed);
  void progress(double loss);
  // A snapshot held in memory until the weights it holds are shown good.
  struct Pending {
    int64_t iter = 0;
    std::vector<proto::NetWeights> weights;                  // per player
    std::vector<std::pair<uint64_t, uint64_t>> generators;  // per player: seed, offset
    proto::SolverState state;
  };
  Pending capture() const;
  std::string weights_file(const std::string& base, const Player& player) const;
  std::string write_snapshot(const Pending& s);
  // The nets' weights and generators as `s` holds them.
  void put_back(const Pending& s);
  // The game's check pass on iteration iter_ with the current weights; "" when the losses and
  // the gradients are finite, else what was not. Generators and parameters are put back.
  std::string check_weights(const Pending& current);
  // Writes pending_ if check_weights finds it good; else records the divergence, false.
  bool write_checked_snapshot();
  std::string divergence(const std::string& what);
  void write_curve();
  void note(const std::string& line);

  proto::SolverParameter param_;
  SolverOptions options_;
  std::string solver_dir_;
  Device device_ = Device::cpu();
  std::string precision_;
  uint64_t seed_ = 1;
  int64_t max_iter_ = 0;
  std::vector<Player> players_;
  std::unique_ptr<Game> game_;
  int64_t iter_ = 0;
  int64_t batch_size_ = 0;
  std::string batch_blob_;
  std::vector<double> losses_;  // the smoothing window (average_loss)
  size_t losses_pos_ = 0;
  std::string prefix_, last_snapshot_;
  std::optional<Pending> pending_;
  std::string eta_ = "?";
  double last_bar_ = 0;
  bool tty_ = false;
  std::string message_;
  std::unique_ptr<DataParallel> data_parallel_;  // set under a launcher with more than one rank
  bool root_ = true;                             // rank 0 (or a single process): writes files
  MetricsLog metrics_;   // the JSONL records (core/metrics_log.h)
  TrainingCurve curve_;  // the points of the training curve (SVG)
};

}  // namespace mmfuse
