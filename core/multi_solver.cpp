#include "core/multi_solver.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include "base/format.h"
#include "core/adversarial.h"
#include "core/ops.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "cuda/precision.h"

namespace mmfuse {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string resolve_path(const std::string& path, const std::string& dir) {
  if (path.empty() || fs::exists(path) || dir.empty() || fs::path(path).is_absolute()) return path;
  fs::path alt = fs::path(dir) / path;
  return fs::exists(alt) ? alt.string() : path;
}

// The solver's settings with a player's overrides.
proto::SolverParameter player_optim(const proto::SolverParameter& solver, const proto::PlayerParameter& p) {
  proto::SolverParameter o = solver;
  o.clear_player();
  o.set_base_lr(p.has_base_lr() ? p.base_lr() : solver.base_lr() * p.lr_mult());
  if (p.has_type()) o.set_type(p.type());
  if (p.has_momentum()) o.set_momentum(p.momentum());
  if (p.has_momentum2()) o.set_momentum2(p.momentum2());
  if (p.has_weight_decay()) o.set_weight_decay(p.weight_decay());
  return o;
}

// A player's generator state in a history slot "<player>/@state": current_step, then seed and
// offset as 32-bit halves (float64 holds them exactly).
const char* kStateSlot = "/@state";

void put_u64(proto::BlobProto& b, uint64_t v) {
  b.add_double_data(static_cast<double>(v >> 32));
  b.add_double_data(static_cast<double>(v & 0xffffffffu));
}
uint64_t get_u64(const proto::BlobProto& b, int at) {
  return (static_cast<uint64_t>(b.double_data(at)) << 32) | static_cast<uint64_t>(b.double_data(at + 1));
}

}  // namespace

MultiSolver::MultiSolver(const proto::SolverParameter& param, const std::string& solver_file, SolverOptions options)
    : param_(param), options_(std::move(options)) {
  const std::string where = solver_file.empty() ? std::string("solver") : solver_file;
  const std::string dir = solver_file.empty() ? std::string() : fs::path(solver_file).parent_path().string();
  auto bad = [&](const std::string& what) { throw Error(where + ": " + what); };
  if (param_.has_net() || param_.has_net_param() || param_.has_train_net() || param_.has_train_net_param() ||
      param_.test_net_size() || param_.test_net_param_size())
    bad("with `player`s, each player names its net (net, net_param, train_net and test_net are not used)");
  if (!param_.has_adversarial())
    bad("`player`s need a schedule: `adversarial { }` (the one multi-net schedule so far, docs/translation.md)");
  if (param_.iter_size() != 1) bad("iter_size must be 1 with `player`s, got " + std::to_string(param_.iter_size()));
  if (param_.test_iter_size() > 0) bad("with `player`s, give test_iter in each player (its TEST net's batches)");
  if (param_.max_iter() < 0) bad("max_iter must be >= 0, got " + std::to_string(param_.max_iter()));
  if (param_.average_loss() < 1) bad("average_loss must be >= 1, got " + std::to_string(param_.average_loss()));
  for (auto [name, v] : {std::pair<const char*, int>{"test_interval", param_.test_interval()}, {"display", param_.display()},
                         {"snapshot", param_.snapshot()}})
    if (v < 0) bad(std::string(name) + " must be >= 0, got " + std::to_string(v));
  seed_ = param_.random_seed() < 0 ? 1 : static_cast<uint64_t>(param_.random_seed());
  max_iter_ = options_.max_iter >= 0 ? options_.max_iter : param_.max_iter();
  cuda::set_precision(cuda::parse_precision(options_.precision.empty() ? param_.precision() : options_.precision));
  device_ = solver_device(param_, options_.device, [&](const std::string& line) { note(line); });

  std::set<std::string> names;
  for (int i = 0; i < param_.player_size(); ++i) {
    const proto::PlayerParameter& pp = param_.player(i);
    const std::string label = "player #" + std::to_string(i) + " '" + pp.name() + "'";
    if (pp.name().empty() || pp.name().find_first_of("/ ") != std::string::npos)
      bad(label + ": needs a name without '/' or spaces");
    if (!names.insert(pp.name()).second) bad(label + ": the name is given twice");
    if (pp.has_net() == pp.has_net_param()) bad(label + ": give exactly one of net, net_param");
    if (pp.test_iter() < 0) bad(label + ": test_iter must be >= 0, got " + std::to_string(pp.test_iter()));
    Player p;
    p.name = pp.name();
    p.optim = player_optim(param_, pp);
    try {
      check_solver_type(p.optim);
      for (int64_t it : {int64_t{0}, std::max<int64_t>(max_iter_, 1) - 1}) {
        double lr = learning_rate(p.optim, it);
        if (!std::isfinite(lr) || lr < 0)
          throw Error("lr_policy " + p.optim.lr_policy() + " gives the rate " + format_number("%g", lr) +
                      " at iteration " + std::to_string(it));
      }
    } catch (const Error& e) {
      bad(label + ": " + e.what());
    }
    proto::NetParameter net;
    if (pp.has_net_param()) {
      net = pp.net_param();
      if (!net.has_source_file()) net.set_source_file(where + " (" + label + " net_param)");
    } else {
      net = read_net(resolve_path(pp.net(), dir));
    }
    p.net = std::make_unique<Net>(net, proto::TRAIN, device_, seed_);
    p.test_iter = pp.test_iter();
    if (p.test_iter > 0) p.test = std::make_unique<Net>(net, proto::TEST, device_, seed_, p.net.get());
    std::vector<OptimParam> ps;
    for (const Param& q : p.net->learnable_params()) ps.push_back({p.name + "/" + q.name, q.value, q.lr_mult, q.decay_mult});
    p.optimizer = std::make_unique<Optimizer>(p.optim, std::move(ps));
    players_.push_back(std::move(p));
  }
  // Samples per iteration: the smallest leading dim among the first player's first layer's tops
  // (its data layer; a modality-stacked top is [M*N, ...], its label [N, ...]), as Solver.
  const Net& first = *players_[0].net;
  if (!first.layers().empty())
    for (const auto& top : first.top_names(0)) {
      const Shape& shape = first.blob_shape(top);
      int64_t n = shape.empty() ? 1 : shape[0];
      if (batch_size_ == 0 || n < batch_size_) batch_size_ = n;
    }
  if (batch_size_ == 0) batch_size_ = 1;
  try {
    game_ = make_adversarial_game(param_.adversarial(), players_);
  } catch (const Error& e) {
    bad(std::string("adversarial: ") + e.what());
  }

  prefix_ = param_.snapshot_prefix();
  if (prefix_.empty())
    prefix_ = solver_file.empty() ? std::string("mmfuse") : fs::path(solver_file).replace_extension().string();
  if (prefix_.back() == '/') prefix_ += "mmfuse";
  metrics_ = MetricsLog(param_.has_metrics_file() ? param_.metrics_file() : prefix_ + "_metrics.jsonl");
  std::string line = "MultiSolver: " + game_->describe() + "; max_iter " + std::to_string(max_iter_) + ", device " +
                     device_.str() + ", random_seed " + std::to_string(seed_);
  for (const Player& p : players_)
    line += "\n    player " + p.name + ": " + p.optim.type() + ", base_lr " + format_number("%g", p.optim.base_lr()) +
            ", lr_policy " + p.optim.lr_policy() + ", " + std::to_string(p.net->num_learnable()) + " parameters" +
            (p.test ? ", test_iter " + std::to_string(p.test_iter) : std::string());
  note(line);
}

MultiSolver::~MultiSolver() = default;

void MultiSolver::note(const std::string& line) {
  if (!options_.out) return;
  std::fprintf(options_.out, "%s\n", line.c_str());
  std::fflush(options_.out);
}

Player& MultiSolver::player(const std::string& name) {
  for (Player& p : players_)
    if (p.name == name) return p;
  throw Error("no player '" + name + "'");
}

double MultiSolver::smoothed_loss() const {
  double s = 0;
  for (double v : losses_) s += v;
  return losses_.empty() ? 0 : s / static_cast<double>(losses_.size());
}

MultiSolver::Pending MultiSolver::capture() const {
  Pending s;
  s.iter = iter_;
  for (const Player& p : players_) {
    s.weights.push_back(net_weights(*p.net));
    proto::SolverState st;
    p.optimizer->save_state(st);
    for (const auto& h : st.history()) *s.state.add_history() = h;
    proto::BlobProto* b = s.state.add_history();
    b->set_name(p.name + kStateSlot);
    b->add_double_data(static_cast<double>(st.current_step()));
    put_u64(*b, p.net->generator().seed());
    put_u64(*b, p.net->generator().offset());
  }
  s.state.set_iter(static_cast<int32_t>(iter_));
  s.state.set_rng_seed(players_[0].net->generator().seed());
  s.state.set_rng_offset(players_[0].net->generator().offset());
  size_t n = losses_.size();
  for (size_t i = 0; i < n; ++i) s.state.add_smoothed_loss(static_cast<float>(losses_[(losses_pos_ + i) % n]));
  return s;
}

std::string MultiSolver::write_snapshot(const Pending& s) {
  std::string base = prefix_ + "_iter_" + std::to_string(s.iter);
  create_parent(base);
  std::string files;
  for (size_t i = 0; i < players_.size(); ++i) {
    std::string w = base + "." + players_[i].name + ".weights";
    write_binary_atomic(w, s.weights[i]);
    files += w + ", ";
  }
  proto::SolverState st = s.state;
  st.set_learned_net(base + "." + players_[0].name + ".weights");
  write_binary_atomic(base + ".solverstate", st);
  last_snapshot_ = base + ".solverstate";
  note("Snapshot at iteration " + std::to_string(s.iter) + ": " + files + last_snapshot_);
  return last_snapshot_;
}

std::string MultiSolver::snapshot() { return write_snapshot(capture()); }

void MultiSolver::restore(const std::string& path) {
  proto::SolverState st;
  read_binary(path, st);
  MMF_CHECK(st.has_iter() && st.iter() >= 0 && st.has_learned_net(), IOError, path,
            ": not a solver state (no iteration or weights file recorded)");
  for (float v : st.smoothed_loss()) MMF_CHECK(std::isfinite(v), IOError, path, ": its smoothed loss holds ", v);
  // The first player's file names the others: <base>.<first>.weights -> <base>.<player>.weights.
  std::string first = st.learned_net(), suffix = "." + players_[0].name + ".weights";
  MMF_CHECK(first.size() > suffix.size() && first.compare(first.size() - suffix.size(), suffix.size(), suffix) == 0,
            IOError, path, ": names the weights file '", first, "', not one of player '", players_[0].name,
            "' (a state written by a single-net Solver? resume it without `player`s)");
  std::string base = first.substr(0, first.size() - suffix.size());
  if (!fs::exists(first)) base = (fs::path(path).parent_path() / fs::path(base).filename()).string();
  std::vector<proto::SolverState> states(players_.size());
  std::vector<const proto::BlobProto*> slots(players_.size(), nullptr);
  for (const auto& h : st.history()) {
    size_t slash = h.name().find('/');
    MMF_CHECK(slash != std::string::npos, IOError, path, ": history slot '", h.name(), "' names no player");
    size_t k = 0;
    while (k < players_.size() && players_[k].name != h.name().substr(0, slash)) ++k;
    MMF_CHECK(k < players_.size(), IOError, path, ": history slot '", h.name(), "' is of no player of this solver");
    if (h.name().substr(slash) == kStateSlot) {
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
    std::string w = base + "." + players_[k].name + ".weights";
    MMF_CHECK(fs::exists(w), IOError, path, ": the weights file of player '", players_[k].name, "' (", w,
              ") is missing");
    try {
      players_[k].optimizer->load_state(states[k]);
    } catch (const IOError& e) {
      throw IOError(path + ": player '" + players_[k].name + "': " + e.what());
    }
    load_weights(*players_[k].net, w, /*strict=*/true);
    players_[k].net->generator().set_state(get_u64(*slots[k], 1), get_u64(*slots[k], 3));
  }
  iter_ = st.iter();
  losses_.assign(st.smoothed_loss().begin(), st.smoothed_loss().end());
  if (static_cast<int>(losses_.size()) > param_.average_loss())
    losses_.erase(losses_.begin(), losses_.end() - param_.average_loss());
  losses_pos_ = losses_.size() % static_cast<size_t>(param_.average_loss());
  metrics_.resume_at(iter_);
  size_t tests = 0;
  for (const Player& p : players_) tests += p.test ? 1 : 0;
  curve_.reload(metrics_.path(), iter_, tests);
  note("Resuming from " + path + " at iteration " + std::to_string(iter_));
}

void MultiSolver::put_back(const Pending& s) {
  for (size_t k = 0; k < players_.size(); ++k) {
    copy_weights(*players_[k].net, s.weights[k], /*strict=*/true);
    for (const auto& h : s.state.history())
      if (h.name() == players_[k].name + kStateSlot)
        players_[k].net->generator().set_state(get_u64(h, 1), get_u64(h, 3));
  }
}

std::string MultiSolver::check_weights(const Pending& current) {
  GameStep r = game_->step(players_, iter_, /*apply=*/false);
  for (Player& p : players_) p.optimizer->zero_grad();
  put_back(current);
  return r.bad;
}

bool MultiSolver::write_checked_snapshot() {
  if (!pending_) return true;
  std::string bad = check_weights(*pending_);
  if (!bad.empty()) {
    divergence(bad + " on the weights of iteration " + std::to_string(iter_));
    return false;
  }
  write_snapshot(*pending_);
  pending_.reset();
  return true;
}

void MultiSolver::divergence(const std::string& what) {
  pending_.reset();
  message_ = "iteration " + std::to_string(iter_) + ": " + what + "; training stopped without a snapshot" +
             (last_snapshot_.empty() ? std::string(" (none was written in this run)")
                                     : " (the last good one is " + last_snapshot_ + ")");
  note(message_);
}

std::vector<TestResult> MultiSolver::test_all() {
  std::vector<TestResult> results;
  size_t tests = 0;
  for (const Player& p : players_) tests += p.test ? 1 : 0;
  size_t i = 0;
  for (Player& p : players_) {
    if (!p.test) continue;
    note("Iteration " + std::to_string(iter_) + ", Testing player " + p.name);
    TestResult r = evaluate(*p.test, p.test_iter, "Test net " + p.name);
    std::string text = r.format_with_loss_weights(*p.test);
    if (!text.empty()) text.pop_back();
    note(text);
    metrics_.write_test(iter_, i, r);
    curve_.add_test(iter_, i, tests, r);
    results.push_back(std::move(r));
    ++i;
  }
  if (!results.empty()) {
    game_->after_test(players_, prefix_ + "_iter_" + std::to_string(iter_));
    write_curve();
  }
  return results;
}

void MultiSolver::write_curve() {
  try {
    curve_.write(prefix_ + "_curve.svg");
  } catch (const std::exception& e) {
    note(std::string("warning: cannot write the training curve: ") + e.what());
  }
}

Solver::Outcome MultiSolver::solve() {
  SignalScope signals(options_.handle_signals);
  message_.clear();
  const int64_t start_iter = iter_;
  const auto start = Clock::now();
  auto last_display = start;
  int64_t last_display_iter = iter_, snapshot_iter = -1, tested_at = -1;
  note("Solving " + std::to_string(players_.size()) + " nets from iteration " + std::to_string(iter_) + " to " +
       std::to_string(max_iter_));
  while (iter_ < max_iter_) {
    if (param_.test_interval() > 0 && iter_ % param_.test_interval() == 0 && (iter_ > 0 || param_.test_initialization())) {
      auto t0 = Clock::now();
      test_all();
      tested_at = iter_;
      last_display += Clock::now() - t0;
    }
    GameStep r = game_->step(players_, iter_, /*apply=*/true);
    for (Player& p : players_) p.optimizer->zero_grad();
    if (!r.bad.empty()) {
      divergence(r.bad);
      return Solver::Outcome::diverged;
    }
    if (pending_) {  // this iteration's finite losses and gradients show the captured weights good
      write_snapshot(*pending_);
      pending_.reset();
    }
    if (static_cast<int>(losses_.size()) < param_.average_loss())
      losses_.push_back(r.loss);
    else
      losses_[losses_pos_] = r.loss;
    losses_pos_ = (losses_pos_ + 1) % static_cast<size_t>(param_.average_loss());
    if (param_.display() > 0 && iter_ % param_.display() == 0) {
      double secs = seconds_since(last_display), elapsed = seconds_since(start);
      double ips = secs > 0 ? static_cast<double>(iter_ + 1 - last_display_iter) / secs : 0;
      double sps = ips * static_cast<double>(batch_size_);
      double lr = players_[0].lr(iter_);
      std::string line = "Iteration " + std::to_string(iter_) + " (" + format_number("%.4g", sps) +
                         " samples/s), loss = " + format_number("%.6g", smoothed_loss());
      for (const Player& p : players_) line += ", lr " + p.name + " = " + format_number("%.6g", p.lr(iter_));
      for (size_t i = 0; i < r.outputs.size(); ++i) {
        float w = loss_weight_of(*players_[0].net, r.outputs[i].first);
        line += "\n    Train output #" + std::to_string(i) + ": " + r.outputs[i].first + " = " +
                format_number("%.6g", r.outputs[i].second) + (w != 0 && w != 1 ? " (* " + format_number("%g", w) + ")" : "");
      }
      note(line);
      std::vector<std::pair<std::string, std::vector<double>>> figures;
      for (const Player& p : players_)
        for (const auto& layer : p.net->layers())
          if (auto f = layer->logged_figures(); !f.empty()) figures.emplace_back(p.name + "/" + layer->name(), std::move(f));
      metrics_.write_train(iter_, lr, smoothed_loss(), r.outputs, r.grad_norm, sps, elapsed, figures);
      curve_.add_train(iter_, smoothed_loss());
      last_display = Clock::now();
      last_display_iter = iter_ + 1;
    }
    ++iter_;
    if (param_.snapshot() > 0 && iter_ % param_.snapshot() == 0) {
      pending_ = capture();
      snapshot_iter = iter_;
    }
    if (take_snapshot_request() && snapshot_iter != iter_) {
      note("SIGHUP: snapshot, then training continues");
      pending_ = capture();
      snapshot_iter = iter_;
    }
    if (stop_requested()) {
      if (snapshot_iter != iter_) pending_ = capture();
      if (!write_checked_snapshot()) return Solver::Outcome::diverged;
      message_ = "interrupted (SIGINT) at iteration " + std::to_string(iter_) + "; resume with --snapshot " +
                 last_snapshot_;
      note(message_);
      write_curve();
      return Solver::Outcome::interrupted;
    }
  }
  if (param_.test_interval() > 0 && iter_ % param_.test_interval() == 0 && tested_at != iter_) test_all();
  if (param_.snapshot_after_train() && snapshot_iter != iter_ && iter_ > start_iter) pending_ = capture();
  bool good = write_checked_snapshot();
  write_curve();
  if (!good) return Solver::Outcome::diverged;
  note("Optimization done at iteration " + std::to_string(iter_) + " (" +
       format_number("%.1f", seconds_since(start)) + " s)");
  return Solver::Outcome::finished;
}

}  // namespace mmfuse
