// The Solver: Caffe's training loop with PyTorch's numerics (core/optimizer.h).
//
// A Solver builds the TRAIN net and the TEST nets (sharing the train net's parameters) from a
// SolverParameter, then solve() runs iterations: forward/backward over iter_size sub-batches
// (each loss scaled by 1/iter_size), an optimizer step at learning_rate(solver, iter), display
// lines (a progress bar in place between them on a terminal), JSONL metrics, tests every
// test_interval, snapshots every `snapshot` iterations and at the end, a training-curve SVG.
// SIGINT and SIGTERM snapshot and stop, SIGHUP snapshots and continues (the handlers only set flags,
// read between iterations). A snapshot is written only from weights shown good: those of
// iteration k are captured in memory and go to disk once iteration k's forward and backward
// gave a finite loss and finite gradients (at the end of a run, one checking forward and
// backward decides, and the net is put back as it was). A NaN/Inf loss or gradient stops
// training; every snapshot on disk is then one the message can truly call good. The test phase
// is evaluate() (core/evaluate.h); the metrics log and the curve are core/metrics_log.h.
// Under an MPI launcher (dist::world().distributed()) the solver trains data-parallel
// (core/data_parallel.h, docs/distributed.md): rank 0 alone prints, logs and snapshots.
#pragma once
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/data_parallel.h"
#include "core/evaluate.h"
#include "core/metrics_log.h"
#include "core/net.h"
#include "core/optimizer.h"
#include "core/snapshot.h"

namespace mmfuse {

// ---- the solver ------------------------------------------------------------------------------

struct SolverOptions {
  std::optional<Device> device;  // --gpu N; unset: solver_mode / device_id
  std::string precision;         // --precision; empty: the solver's
  int64_t max_iter = -1;         // --max-iter; -1: the solver's
  std::FILE* out = stdout;       // display, test results, notes
  bool handle_signals = true;    // install SIGINT/SIGTERM/SIGHUP handlers during solve()
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
  // Runs up to max_iter. `diverged`: message() names the iteration and the output blob.
  Outcome solve();
  const std::string& message() const { return message_; }

  // Fine-tuning: copies weights by name, prints and returns the table.
  CopyReport load_weights(const std::string& path);
  // Resumes from a .solverstate (weights from its learned_net, optimizer history, iteration,
  // the train net's generator, the smoothed-loss window). Every field is checked first. The
  // metrics log keeps the records of earlier iterations only (at the first write).
  void restore(const std::string& solverstate_path);
  // Writes <prefix>_iter_N.weights and .solverstate now, unchecked; returns the solverstate path.
  std::string snapshot();
  // Runs every test net once (test_iter batches), prints and records the results.
  std::vector<TestResult> test_all();

  Net& net() { return *net_; }
  const std::vector<std::unique_ptr<Net>>& test_nets() const { return test_nets_; }
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
  void display(double loss, const std::vector<std::pair<std::string, double>>& outputs, double lr,
               double seconds_since_display, int64_t iters_since_display);
  void progress(double loss);
  // A snapshot held in memory until the weights it holds are shown good.
  struct Pending {
    int64_t iter = 0;
    proto::NetWeights weights;
    proto::SolverState state;
  };
  Pending capture() const;
  std::string write_snapshot(const Pending& s);
  // One forward and backward of iteration iter_ on the current weights; "" when the loss and
  // the gradients are finite, else what was not. Generator and parameters are put back.
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
  std::unique_ptr<Net> net_;
  std::vector<std::unique_ptr<Net>> test_nets_;
  std::unique_ptr<Optimizer> optimizer_;
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

// Signal flags (set by the handlers solve() installs; exposed for tests and tools).
// The device a solver trains on: `requested` (--gpu), else solver_mode / device_id. With no CUDA
// device visible, the CPU, after a note through `note`; an index past the visible devices is a
// DeviceError.
Device solver_device(const proto::SolverParameter& param, const std::optional<Device>& requested,
                     const std::function<void(const std::string&)>& note);

void request_snapshot();  // as SIGHUP
void request_stop();      // as SIGINT or SIGTERM
// For other training loops (core/multi_solver.h): the flags, read between iterations
// (take_snapshot_request clears its flag), and the handlers, installed for a scope's life (the
// flags cleared at its start, the previous handlers put back at its end).
bool stop_requested();
bool take_snapshot_request();
class SignalScope {
 public:
  explicit SignalScope(bool enabled);
  ~SignalScope();
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  struct Saved;
  std::unique_ptr<Saved> saved_;
};

}  // namespace mmfuse
