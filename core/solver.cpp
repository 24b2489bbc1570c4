// The training loop (solve()) and the lifecycle around it: signals, display and progress,
// tests, snapshots held until shown good, resume. Building a Solver is core/solver_setup.cpp.
#include "core/solver.h"


#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "base/format.h"

namespace mmfuse {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string duration_str(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                  static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(t / 60), static_cast<long long>(t % 60));
  return buf;
}

}  // namespace


// ---- the solver ------------------------------------------------------------------------------

namespace {

// A named player's step count and generator in a history slot "<player>/@state": current_step,
// then seed and offset as 32-bit halves (float64 holds them exactly).
const char* kStateSlot = "@state";

void put_u64(proto::BlobProto& b, uint64_t v) {
  b.add_double_data(static_cast<double>(v >> 32));
  b.add_double_data(static_cast<double>(v & 0xffffffffu));
}
uint64_t get_u64(const proto::BlobProto& b, int at) {
  return (static_cast<uint64_t>(b.double_data(at)) << 32) | static_cast<uint64_t>(b.double_data(at + 1));
}

}  // namespace

Solver::~Solver() = default;

void Solver::note(const std::string& line) {
  if (!options_.out) return;
  if (tty_) std::fputs("\r\033[K", options_.out);
  std::fprintf(options_.out, "%s\n", line.c_str());
  std::fflush(options_.out);
}

Player& Solver::player(const std::string& name) {
  for (Player& p : players_)
    if (p.name == name) return p;
  throw Error("no player '" + name + "'");
}

double Solver::smoothed_loss() const {
  if (losses_.empty()) return 0;
  double s = 0;
  for (double v : losses_) s += v;
  return s / static_cast<double>(losses_.size());
}

CopyReport Solver::load_weights(const std::string& path) {
  CopyReport r = mmfuse::load_weights(net(), path);
  note("Fine-tuning from " + path + ":\n" + r.table());
  return r;
}

void Solver::restore(const std::string& path) {
  proto::SolverState st;
  read_binary(path, st);
  // Checked before anything is used: a state from elsewhere must not reach the data layers.
  MMF_CHECK(st.has_iter() && st.has_learned_net(), IOError, path, ": not a solver state (no iteration or weights "
            "file recorded; a .weights file is given with --weights)");
  MMF_CHECK(st.iter() >= 0, IOError, path, ": iteration ", st.iter(), " is negative");
  for (unsigned char c : st.learned_net())
    MMF_CHECK(c >= 0x20 && c != 0x7f, IOError, path, ": its weights path is not text (not a solver state? a .weights "
              "file is given with --weights)");
  for (float v : st.smoothed_loss())
    MMF_CHECK(std::isfinite(v), IOError, path, ": its smoothed loss holds ", v);
  std::string w = st.learned_net();
  MMF_CHECK(!w.empty(), IOError, path, ": names no weights file");
  // The weights files, and each player's part of the state.
  std::vector<std::string> files;
  std::vector<proto::SolverState> states(players_.size());
  std::vector<const proto::BlobProto*> slots(players_.size(), nullptr);
  if (players_[0].name.empty()) {
    if (!fs::exists(w)) {
      fs::path alt = fs::path(path).parent_path() / fs::path(w).filename();
      MMF_CHECK(fs::exists(alt), IOError, path, ": its weights file '", w, "' is missing (also looked for ",
                alt.string(), ")");
      w = alt.string();
    }
    files.push_back(w);
    states[0] = st;
  } else {
    // The first player's file names the others: <base>.<first>.weights -> <base>.<player>.weights.
    const std::string suffix = "." + players_[0].name + ".weights";
    MMF_CHECK(w.size() > suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0, IOError,
              path, ": names the weights file '", w, "', not one of player '", players_[0].name,
              "' (a state written by a single-net Solver? resume it without `player`s)");
    std::string base = w.substr(0, w.size() - suffix.size());
    if (!fs::exists(w)) base = (fs::path(path).parent_path() / fs::path(base).filename()).string();
    for (const Player& p : players_) {
      files.push_back(weights_file(base, p));
      MMF_CHECK(fs::exists(files.back()), IOError, path, ": the weights file of player '", p.name, "' (",
                files.back(), ") is missing");
    }
    for (const auto& h : st.history()) {
      size_t slash = h.name().find('/');
      MMF_CHECK(slash != std::string::npos, IOError, path, ": history slot '", h.name(), "' names no player");
      size_t k = 0;
      while (k < players_.size() && players_[k].name != h.name().substr(0, slash)) ++k;
      MMF_CHECK(k < players_.size(), IOError, path, ": history slot '", h.name(), "' is of no player of this solver");
      if (h.name().substr(slash + 1) == kStateSlot) {
        MMF_CHECK(h.double_data_size() == 5, IOError, path, ": ", h.name(), " holds ", h.double_data_size(),
                  " values, not 5");
        slots[k] = &h;
      } else {
        *states[k].add_history() = h;
      }
    }
    for (size_t k = 0; k < players_.size(); ++k) {
      MMF_CHECK(slots[k], IOError, path, ": holds no state of player '", players_[k].name, "'");
      states[k].set_current_step(static_cast<int32_t>(slots[k]->double_data(0)));
    }
  }
  for (size_t k = 0; k < players_.size(); ++k) {
    try {
      players_[k].optimizer->load_state(states[k]);
    } catch (const IOError& e) {
      throw IOError(path + ": " + (players_[k].name.empty() ? "" : "player '" + players_[k].name + "': ") + e.what());
    }
    mmfuse::load_weights(*players_[k].net, files[k], /*strict=*/true);
    if (slots[k])
      players_[k].net->generator().set_state(get_u64(*slots[k], 1), get_u64(*slots[k], 3));
    else
      players_[k].net->generator().set_state(st.rng_seed(), st.rng_offset());
  }
  iter_ = st.iter();
  losses_.assign(st.smoothed_loss().begin(), st.smoothed_loss().end());
  if (static_cast<int>(losses_.size()) > param_.average_loss())
    losses_.erase(losses_.begin(), losses_.end() - param_.average_loss());
  losses_pos_ = losses_.size() % static_cast<size_t>(param_.average_loss());
  metrics_.resume_at(iter_);
  // The earlier part of the training curve, from the records a resume keeps.
  size_t tests = 0;
  for (const Player& p : players_) tests += p.tests.size();
  curve_.reload(metrics_.path(), iter_, tests);
  std::string list;
  for (const std::string& f : files) list += (list.empty() ? "" : ", ") + f;
  note("Resuming from " + path + " at iteration " + std::to_string(iter_) + " (weights " + list + ")");
}

Solver::Pending Solver::capture() const {
  Pending s;
  s.iter = iter_;
  for (const Player& p : players_) {
    s.weights.push_back(net_weights(*p.net));
    s.generators.emplace_back(p.net->generator().seed(), p.net->generator().offset());
    if (p.name.empty()) {  // the one net: Caffe's layout
      p.optimizer->save_state(s.state);
      continue;
    }
    proto::SolverState st;
    p.optimizer->save_state(st);
    for (const auto& h : st.history()) *s.state.add_history() = h;
    proto::BlobProto* b = s.state.add_history();
    b->set_name(p.scope() + kStateSlot);
    b->add_double_data(static_cast<double>(st.current_step()));
    put_u64(*b, s.generators.back().first);
    put_u64(*b, s.generators.back().second);
  }
  s.state.set_iter(static_cast<int32_t>(iter_));
  s.state.set_rng_seed(s.generators[0].first);
  s.state.set_rng_offset(s.generators[0].second);
  // The window oldest first, so that a restore can continue the ring.
  size_t n = losses_.size();
  for (size_t i = 0; i < n; ++i) s.state.add_smoothed_loss(static_cast<float>(losses_[(losses_pos_ + i) % n]));
  return s;
}

std::string Solver::weights_file(const std::string& base, const Player& player) const {
  return base + (player.name.empty() ? "" : "." + player.name) + ".weights";
}

std::string Solver::write_snapshot(const Pending& s) {
  std::string base = prefix_ + "_iter_" + std::to_string(s.iter);
  if (!root_) return last_snapshot_ = base + ".solverstate";  // rank 0 writes it
  create_parent(base);
  std::string files;
  for (size_t k = 0; k < players_.size(); ++k) {
    std::string w = weights_file(base, players_[k]);
    write_binary_atomic(w, s.weights[k]);
    files += w + ", ";
  }
  proto::SolverState st = s.state;
  st.set_learned_net(weights_file(base, players_[0]));
  write_binary_atomic(base + ".solverstate", st);
  last_snapshot_ = base + ".solverstate";
  note("Snapshot at iteration " + std::to_string(s.iter) + ": " + files + last_snapshot_);
  return last_snapshot_;
}

std::string Solver::snapshot() { return write_snapshot(capture()); }

void Solver::put_back(const Pending& s) {
  for (size_t k = 0; k < players_.size(); ++k) {
    copy_weights(*players_[k].net, s.weights[k], /*strict=*/true);
    players_[k].net->generator().set_state(s.generators[k].first, s.generators[k].second);
  }
}

std::string Solver::check_weights(const Pending& current) {
  GameStep r = game_->forward_backward(players_, iter_, /*apply=*/false, /*show=*/false);
  for (const Player& p : players_)
    if (r.bad.empty()) r.bad = bad_gradient(*p.optimizer);
  for (Player& p : players_) p.optimizer->zero_grad();
  // Put back what the checking forwards changed: BN statistics and the generators.
  put_back(current);
  return r.bad;
}

bool Solver::write_checked_snapshot() {
  if (!pending_) return true;
  std::string bad = check_weights(*pending_);
  if (data_parallel_ && data_parallel_->any(!bad.empty(), "the check of the snapshot at iteration " + std::to_string(iter_)) &&
      bad.empty())
    bad = "another rank's check failed";
  if (!bad.empty()) {
    divergence(bad + " on the weights of iteration " + std::to_string(iter_));
    return false;
  }
  write_snapshot(*pending_);
  pending_.reset();
  return true;
}

std::string Solver::divergence(const std::string& what) {
  pending_.reset();
  message_ = "iteration " + std::to_string(iter_) + ": " + what + "; training stopped without a snapshot" +
             (last_snapshot_.empty() ? std::string(" (none was written in this run)")
                                     : " (the last good one is " + last_snapshot_ + ")");
  note(message_);
  return message_;
}

std::vector<TestResult> Solver::test_all() {
  // Every rank tests with rank 0's BatchNorm statistics (the test nets share the train net's).
  if (data_parallel_) data_parallel_->broadcast_state(net(), iter_);
  size_t nets = 0;
  for (const Player& p : players_) nets += p.tests.size();
  std::vector<TestResult> results;
  for (const Player& p : players_)
    for (const Player::Test& t : p.tests) {
      const size_t i = results.size();
      note("Iteration " + std::to_string(iter_) + ", Testing " +
           (p.name.empty() ? "net #" + std::to_string(i) : "player " + p.name));
      TestResult r = evaluate(*t.net, t.iterations, p.name.empty() ? "Test net" : "Test net " + p.name);
      std::string text = r.format_with_loss_weights(*t.net);
      if (!text.empty()) text.pop_back();
      note(text);
      if (root_) metrics_.write_test(iter_, i, r);
      curve_.add_test(iter_, i, nets, r);
      results.push_back(std::move(r));
    }
  if (!results.empty()) {
    if (root_) game_->after_test(players_, prefix_ + "_iter_" + std::to_string(iter_));
    write_curve();
  }
  return results;
}

void Solver::write_curve() {
  if (!root_) return;
  try {
    curve_.write(curve_path());
  } catch (const std::exception& e) {
    note(std::string("warning: cannot write the training curve: ") + e.what());
  }
}

void Solver::progress(double loss) {
  if (!tty_ || max_iter_ <= 0) return;
  double now = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
  if (now - last_bar_ < 0.1 && iter_ < max_iter_) return;  // at most 10 updates a second
  last_bar_ = now;
  const int width = 30;
  double frac = std::min(1.0, static_cast<double>(iter_) / static_cast<double>(max_iter_));
  int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < width) bar += '>';
  bar.resize(width, ' ');
  std::fprintf(options_.out, "\r[%s] %lld/%lld  loss %.4g  ETA %s\033[K", bar.c_str(), static_cast<long long>(iter_),
               static_cast<long long>(max_iter_), loss, eta_.c_str());
  std::fflush(options_.out);
}

void Solver::display(const GameStep& step, double smoothed, double samples_per_s, double elapsed) {
  const double lr = players_[0].lr(iter_);
  std::string line = "Iteration " + std::to_string(iter_) + " (" + format_number("%.4g", samples_per_s) +
                     " samples/s), loss = " + format_number("%.6g", smoothed);
  if (players_[0].name.empty())
    line += ", lr = " + format_number("%.6g", lr);
  else
    for (const Player& p : players_) line += ", lr " + p.name + " = " + format_number("%.6g", p.lr(iter_));
  line += ", elapsed " + duration_str(elapsed) + ", ETA " + eta_;
  for (size_t i = 0; i < step.outputs.size(); ++i) {
    const auto& [name, value] = step.outputs[i];
    float w = loss_weight_of(net(), name);
    line += "\n    Train net output #" + std::to_string(i) + ": " + name + " = " + format_number("%.6g", value) +
            (w != 0 ? " (* " + format_number("%g", w) + " = " + format_number("%.6g", w * value) + " loss)" : "");
  }
  note(line);
  std::vector<std::pair<std::string, std::vector<double>>> figures;
  for (const Player& p : players_)
    for (const auto& layer : p.net->layers())
      if (auto f = layer->logged_figures(); !f.empty()) figures.emplace_back(p.scope() + layer->name(), std::move(f));
  if (root_) metrics_.write_train(iter_, lr, smoothed, step.outputs, step.grad_norm, samples_per_s, elapsed, figures);
  curve_.add_train(iter_, smoothed);
}

Solver::Outcome Solver::solve() {
  SignalScope signals(options_.handle_signals, /*unblock_output=*/data_parallel_ != nullptr);
  message_.clear();
  const int iter_size = param_.iter_size();
  const int display_every = param_.display();
  const int64_t start_iter = iter_;
  const auto start = Clock::now();
  auto last_display = start;
  int64_t last_display_iter = iter_;
  int64_t snapshot_iter = -1;
  if (data_parallel_) {
    data_parallel_->broadcast_parameters(net(), "at the start (from rank 0)");
    data_parallel_->own_dropout_stream(net().generator());
  }
  note("Solving " +
       (!players_[0].name.empty() ? std::to_string(players_.size()) + " nets"
        : net().name().empty()    ? std::string("the net")
                                  : net().name()) +
       " from iteration " + std::to_string(iter_) + " to " + std::to_string(max_iter_) + " (batch " +
       std::to_string(batch_size_) + " from blob '" + batch_blob_ + "' x iter_size " + std::to_string(iter_size) + ")");
  int64_t tested_at = -1;
  while (iter_ < max_iter_) {
    if (param_.test_interval() > 0 && iter_ % param_.test_interval() == 0 &&
        (iter_ > 0 || param_.test_initialization())) {
      auto t0 = Clock::now();
      test_all();
      tested_at = iter_;
      last_display += Clock::now() - t0;  // throughput counts training only
    }
    bool show = display_every > 0 && iter_ % display_every == 0;
    if (data_parallel_) data_parallel_->broadcast_state(net(), iter_);
    GameStep step = game_->forward_backward(players_, iter_, /*apply=*/true, show);
    if (!step.bad.empty()) {
      divergence(step.bad);
      // The other ranks saw a finite loss and wait for this one: stop the job.
      if (data_parallel_) data_parallel_->world().abort(message_, 3);
      return Outcome::diverged;
    }
    // The signals as seen now; under data parallelism the ranks agree on them (and average the
    // loss and the gradients), so that all stop or snapshot at the same iteration.
    bool want_stop = stop_requested(), want_snapshot = take_snapshot_request();
    if (data_parallel_) {
      std::vector<double> shown;
      for (const auto& o : step.outputs) shown.push_back(o.second);
      DataParallel::Agreed a = data_parallel_->agree(step.loss, shown, want_stop, want_snapshot, iter_);
      step.loss = a.loss, want_stop = a.stop, want_snapshot = a.snapshot;
      for (size_t i = 0; i < step.outputs.size(); ++i) step.outputs[i].second = a.outputs[i];
      data_parallel_->average_gradients(players_[0].optimizer->params(), iter_);
      if (iter_ == start_iter)
        note("Gradient all-reduce: " + std::to_string(data_parallel_->buckets().size()) + " buckets of <= " +
             format_number("%g", param_.allreduce_bucket_mb()) + " MiB, " +
             (data_parallel_->overlap()
                  ? std::to_string(data_parallel_->started_during_backward()) + " of them started during backward"
                  : std::string("all after backward (allreduce_overlap: false)")));
    }
    game_->update(players_, iter_, step);
    for (Player& p : players_) p.optimizer->zero_grad();
    if (!step.bad.empty()) {
      divergence(step.bad);
      return Outcome::diverged;
    }
    // This iteration's losses and gradients show the captured weights good.
    if (pending_) {
      write_snapshot(*pending_);
      pending_.reset();
    }

    if (static_cast<int>(losses_.size()) < param_.average_loss()) {
      losses_.push_back(step.loss);
    } else {
      losses_[losses_pos_] = step.loss;
    }
    losses_pos_ = (losses_pos_ + 1) % static_cast<size_t>(param_.average_loss());
    double smoothed = smoothed_loss();
    double elapsed = seconds_since(start);
    int64_t done = iter_ + 1 - start_iter;
    eta_ = duration_str(elapsed / static_cast<double>(done) * static_cast<double>(max_iter_ - iter_ - 1));
    if (show) {
      double secs = seconds_since(last_display);
      int64_t iters = iter_ + 1 - last_display_iter;
      // Samples of the global batch: every rank's.
      double sps = secs > 0 ? static_cast<double>(iters * batch_size_ * iter_size * dist::world().size()) / secs : 0;
      display(step, smoothed, sps, elapsed);
      last_display = Clock::now();
      last_display_iter = iter_ + 1;
    }
    ++iter_;
    if (!show) progress(smoothed);

    if (param_.snapshot() > 0 && iter_ % param_.snapshot() == 0) {
      pending_ = capture();
      snapshot_iter = iter_;
    }
    if (want_snapshot && snapshot_iter != iter_) {
      note("SIGHUP: snapshot, then training continues");
      pending_ = capture();
      snapshot_iter = iter_;
    }
    if (want_stop) {
      if (snapshot_iter != iter_) pending_ = capture();
      if (!write_checked_snapshot()) return Outcome::diverged;
      message_ = "interrupted (SIGINT/SIGTERM/SIGUSR1) at iteration " + std::to_string(iter_) + "; resume with --snapshot " +
                 last_snapshot_;
      note(message_);
      write_curve();
      return Outcome::interrupted;
    }
  }
  if (param_.test_interval() > 0 && iter_ % param_.test_interval() == 0 && tested_at != iter_) test_all();
  if (param_.snapshot_after_train() && snapshot_iter != iter_ && iter_ > start_iter) pending_ = capture();
  bool good = write_checked_snapshot();
  write_curve();
  if (!good) return Outcome::diverged;
  note("Optimization done at iteration " + std::to_string(iter_) + " (" + duration_str(seconds_since(start)) + ")");
  return Outcome::finished;
}

}  // namespace mmfuse
