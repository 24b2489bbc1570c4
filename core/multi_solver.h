// MultiSolver: several nets trained together from ONE solver prototxt (Caffe has no such
// thing). Each `player { name net base_lr type momentum ... }` is a net with its own optimizer
// and learning rate (the solver's lr_policy, warm-up and the rest apply to each); a Game says
// what one iteration does with them (which forwards, which losses, which optimizer steps).
// The one Game so far is the conditional GAN of pix2pix (core/adversarial.h, `adversarial {}`);
// another schedule (a teacher and a student, several discriminators, alternating blocks) is
// another Game over the same players, snapshots and logs.
//
// What Solver does, the MultiSolver does for every player: display lines with every player's
// losses, the JSONL metrics log and the training curve, tests every test_interval (each
// player's TEST net with its test_iter batches), snapshots every `snapshot` iterations and at
// the end, SIGINT (snapshot and stop) and SIGHUP (snapshot and continue), resume bit-exact on
// CPU (weights, optimizer moments, iteration, every net's dropout generator, the smoothing
// window), and no snapshot from weights not shown good (a non-finite loss or gradient stops
// training). A snapshot is one .weights file per player, <prefix>_iter_N.<player>.weights
// (each loads alone into that player's net: `mmfuse test --weights`), and one .solverstate
// naming the first player's file, whose history slots are named "<player>/<layer>.<param>.<k>".
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/evaluate.h"
#include "core/metrics_log.h"
#include "core/net.h"
#include "core/optimizer.h"
#include "core/solver.h"

namespace mmfuse {

// One net of a multi-net solver, with its optimizer.
struct Player {
  std::string name;
  proto::SolverParameter optim;  // the solver's settings with this player's overrides
  std::unique_ptr<Net> net;      // the TRAIN net
  std::unique_ptr<Net> test;     // the TEST net (sharing the parameters) when test_iter > 0
  int test_iter = 0;
  std::unique_ptr<Optimizer> optimizer;
  double lr(int64_t iter) const { return learning_rate(optim, iter); }
};

// One iteration's report: the loss the display smooths, the figures it shows and logs, the
// first player's gradient norm; `bad` names what was not finite (then nothing was applied
// after it).
struct GameStep {
  double loss = 0;
  std::vector<std::pair<std::string, double>> outputs;
  double grad_norm = 0;
  std::string bad;
};

// The update schedule of a MultiSolver.
class Game {
 public:
  virtual ~Game() = default;
  // One iteration: data from batch `iter` of the nets' data layers. apply = false computes the
  // losses and gradients only (the check before a snapshot); the caller clears the gradients.
  virtual GameStep step(std::vector<Player>& players, int64_t iter, bool apply) = 0;
  // After a test of every player's TEST net (e.g. image grids), `prefix`: <snapshot_prefix>_iter_N.
  virtual void after_test(std::vector<Player>& /*players*/, const std::string& /*prefix*/) {}
  virtual std::string describe() const = 0;
};

class MultiSolver {
 public:
  MultiSolver(const proto::SolverParameter& param, const std::string& solver_file = "", SolverOptions options = {});
  ~MultiSolver();
  MultiSolver(const MultiSolver&) = delete;
  MultiSolver& operator=(const MultiSolver&) = delete;

  Solver::Outcome solve();
  const std::string& message() const { return message_; }
  // Resumes from a .solverstate written by a MultiSolver of the same players.
  void restore(const std::string& solverstate_path);
  std::string snapshot();  // now, unchecked; returns the solverstate path
  std::vector<TestResult> test_all();

  std::vector<Player>& players() { return players_; }
  Player& player(const std::string& name);
  int64_t iter() const { return iter_; }
  const std::string& metrics_path() const { return metrics_.path(); }
  const std::string& last_snapshot() const { return last_snapshot_; }
  const std::string& snapshot_prefix() const { return prefix_; }
  double smoothed_loss() const;

 private:
  struct Pending {
    int64_t iter = 0;
    std::vector<proto::NetWeights> weights;  // per player
    proto::SolverState state;
  };
  Pending capture() const;
  std::string write_snapshot(const Pending& s);
  std::string check_weights(const Pending& current);
  bool write_checked_snapshot();
  void put_back(const Pending& s);
  void divergence(const std::string& what);
  void note(const std::string& line);
  void write_curve();

  proto::SolverParameter param_;
  SolverOptions options_;
  Device device_ = Device::cpu();
  uint64_t seed_ = 1;
  int64_t max_iter_ = 0;
  std::vector<Player> players_;
  std::unique_ptr<Game> game_;
  int64_t iter_ = 0;
  int64_t batch_size_ = 0;  // samples per iteration (the display's samples/s)
  std::vector<double> losses_;
  size_t losses_pos_ = 0;
  std::string prefix_, last_snapshot_, message_;
  std::optional<Pending> pending_;
  MetricsLog metrics_;
  TrainingCurve curve_;
};

// A solver prototxt with `player`s (for `mmfuse train`: a MultiSolver, not a Solver).
inline bool is_multi_net(const proto::SolverParameter& param) { return param.player_size() > 0; }

}  // namespace mmfuse
