#include "core/solver.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <functional>

#include "base/format.h"
#include "core/ops.h"
#include "core/prototxt.h"
#include "cuda/precision.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace mmfuse {

namespace fs = std::filesystem;

// ---- signals -----------------------------------------------------------------------------------

namespace {
std::atomic<bool> g_stop{false};
std::atomic<bool> g_snapshot{false};
// Set while a data-parallel solve runs: a stop signal also makes stdout and stderr non-blocking.
// On Ctrl-C, OpenMPI's mpirun stops draining the ranks' output before it kills them; a rank
// blocked writing its progress into the full pipe would never reach its snapshot. Non-blocking,
// the write fails (the line is lost; mpirun would not have shown it) and the rank goes on to
// the agreed stop and the snapshot. (fcntl is async-signal-safe; the descriptors are the
// launcher's pipes, never the user's terminal.)
std::atomic<bool> g_unblock_output_on_stop{false};
extern "C" void on_sigint(int) {
  g_stop.store(true);
  if (!g_unblock_output_on_stop.load()) return;
  for (int fd : {STDOUT_FILENO, STDERR_FILENO}) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  }
}
extern "C" void on_sighup(int) { g_snapshot.store(true); }

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

double mean_of(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

int visible_gpus() {
#ifdef MMFUSE_WITH_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

}  // namespace

Device solver_device(const proto::SolverParameter& param, const std::optional<Device>& requested,
                     const std::function<void(const std::string&)>& note) {
  Device want = requested ? *requested
                          : (param.solver_mode() == proto::SolverParameter::GPU ? Device::cuda(param.device_id())
                                                                                : Device::cpu());
  if (!want.is_cuda()) return want;
  int n = visible_gpus();
  if (n == 0) {
    note("note: no CUDA device visible" +
         std::string(
#ifdef MMFUSE_WITH_CUDA
             ""
#else
             " (a CPU-only build)"
#endif
             ) +
         "; training on the CPU");
    return Device::cpu();
  }
  MMF_CHECK(want.index < n, DeviceError, "solver: CUDA device ", want.index, " requested, ", n, " visible");
  return want;
}

void request_snapshot() { g_snapshot.store(true); }
void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(); }
bool take_snapshot_request() { return g_snapshot.exchange(false); }

struct SignalScope::Saved {
  struct sigaction old_int {}, old_term {}, old_usr1 {}, old_hup {};
};

SignalScope::SignalScope(bool enabled) {
  g_stop.store(false);
  g_snapshot.store(false);
  if (!enabled) return;
  saved_ = std::make_unique<Saved>();
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &saved_->old_int);
  sigaction(SIGTERM, &sa, &saved_->old_term);  // what mpirun and Slurm send the ranks on Ctrl-C
  // OpenMPI's mpirun forwards SIGUSR1 to every rank and kills nothing (docs/distributed.md).
  sigaction(SIGUSR1, &sa, &saved_->old_usr1);
  sa.sa_handler = on_sighup;
  sigaction(SIGHUP, &sa, &saved_->old_hup);
}

SignalScope::~SignalScope() {
  g_unblock_output_on_stop.store(false);
  if (!saved_) return;
  sigaction(SIGINT, &saved_->old_int, nullptr);
  sigaction(SIGTERM, &saved_->old_term, nullptr);
  sigaction(SIGUSR1, &saved_->old_usr1, nullptr);
  sigaction(SIGHUP, &saved_->old_hup, nullptr);
}

// ---- the solver ------------------------------------------------------------------------------

namespace {
std::string resolve_path(const std::string& path, const std::string& dir) {
  if (path.empty() || fs::exists(path) || dir.empty() || fs::path(path).is_absolute()) return path;
  fs::path alt = fs::path(dir) / path;
  return fs::exists(alt) ? alt.string() : path;
}

// Every setting checked before a net is built or a file touched: the first problem, naming the
// field (Caffe refuses the same: one train net, a non-negative rate, ascending step values).
void check_solver(const proto::SolverParameter& p, int64_t max_iter_override) {
  auto bad = [](const std::string& what) { throw Error(what); };
  int nets = p.has_net() + p.has_net_param() + p.has_train_net() + p.has_train_net_param();
  if (p.player_size() > 0)
    bad("this solver trains several nets (`player`s): `mmfuse train` runs it (core/multi_solver.h, docs/translation.md)");
  if (nets == 0) bad("no net given (set one of net, net_param, train_net, train_net_param)");
  if (nets > 1) bad("more than one train net given (net, net_param, train_net, train_net_param: set exactly one)");
  if (!std::isfinite(p.base_lr()) || p.base_lr() < 0) bad("base_lr must be >= 0, got " + format_number("%g", p.base_lr()));
  if (p.max_iter() < 0) bad("max_iter must be >= 0, got " + std::to_string(p.max_iter()));
  if (max_iter_override < -1) bad("--max-iter must be >= 0, got " + std::to_string(max_iter_override));
  const int64_t max_iter = max_iter_override >= 0 ? max_iter_override : p.max_iter();
  if (p.iter_size() < 1) bad("iter_size must be >= 1, got " + std::to_string(p.iter_size()));
  if (p.average_loss() < 1) bad("average_loss must be >= 1, got " + std::to_string(p.average_loss()));
  if (p.test_interval() > 0 && p.test_iter_size() == 0)
    bad("test_interval " + std::to_string(p.test_interval()) +
        " needs a test_iter (batches per test) for each test net; none given");
  for (int i = 0; i < p.test_iter_size(); ++i)
    if (p.test_iter(i) <= 0)
      bad("test_iter must be > 0, got " + std::to_string(p.test_iter(i)) +
          (p.test_iter_size() > 1 ? " (value #" + std::to_string(i) + ")" : std::string()));
  for (auto [name, v] : {std::pair<const char*, int>{"test_interval", p.test_interval()}, {"display", p.display()},
                         {"snapshot", p.snapshot()}, {"warmup_iter", p.warmup_iter()}, {"stepsize", p.stepsize()}})
    if (v < 0) bad(std::string(name) + " must be >= 0, got " + std::to_string(v));
  for (int i = 0; i < p.stepvalue_size(); ++i) {
    if (p.stepvalue(i) < 0) bad("stepvalue must be >= 0, got " + std::to_string(p.stepvalue(i)));
    if (i > 0 && p.stepvalue(i) <= p.stepvalue(i - 1))
      bad("stepvalue must ascend, got " + std::to_string(p.stepvalue(i - 1)) + " then " + std::to_string(p.stepvalue(i)));
  }
  if (!std::isfinite(p.weight_decay()) || p.weight_decay() < 0)
    bad("weight_decay must be >= 0, got " + format_number("%g", p.weight_decay()));
  if (!(p.momentum() >= 0 && p.momentum() < 1)) bad("momentum must be in [0, 1), got " + format_number("%g", p.momentum()));
  if (!(p.momentum2() >= 0 && p.momentum2() < 1)) bad("momentum2 must be in [0, 1), got " + format_number("%g", p.momentum2()));
  if (!(p.delta() > 0)) bad("delta must be > 0, got " + format_number("%g", p.delta()));
  if (p.precision() != "fp32" && p.precision() != "tf32")
    bad("precision must be fp32 or tf32, got '" + p.precision() + "'");
  check_solver_type(p);
  // The policy's own checks (unknown name, stepsize, step_factor count) and a finite rate
  // over the whole run.
  for (int64_t it : {int64_t{0}, std::max<int64_t>(max_iter, 1) - 1}) {
    double lr = learning_rate(p, it);
    if (!std::isfinite(lr) || lr < 0)
      bad("lr_policy " + p.lr_policy() + " gives the rate " + format_number("%g", lr) + " at iteration " + std::to_string(it));
  }
}

}  // namespace

Solver::Solver(const proto::SolverParameter& param, const std::string& solver_file, SolverOptions options)
    : param_(param), options_(std::move(options)) {
  if (!solver_file.empty()) solver_dir_ = fs::path(solver_file).parent_path().string();
  tty_ = options_.out && isatty(fileno(options_.out));
  seed_ = param_.random_seed() < 0 ? 1 : static_cast<uint64_t>(param_.random_seed());
  max_iter_ = options_.max_iter >= 0 ? options_.max_iter : param_.max_iter();
  const std::string where = solver_file.empty() ? std::string("solver") : solver_file;
  try {
    check_solver(param_, options_.max_iter);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  if (dist::world().distributed()) {
    MMF_CHECK(param_.collective_timeout() > 0, Error, where, ": collective_timeout must be > 0, got ",
              param_.collective_timeout());
    dist::world().set_timeout(param_.collective_timeout());
    data_parallel_ =
        std::make_unique<DataParallel>(dist::world(), param_.allreduce_bucket_mb(), param_.allreduce_overlap());
    root_ = dist::world().is_root();
    if (!root_) options_.out = nullptr, tty_ = false;  // rank 0 alone prints
  }
  precision_ = options_.precision.empty() ? param_.precision() : options_.precision;
  MMF_CHECK(precision_ == "fp32" || precision_ == "tf32", Error, "--precision must be fp32 or tf32, got '",
            precision_, "'");
  // One switch for the solver: products in cuBLAS and convolutions in cuDNN alike.
  cuda::set_precision(cuda::parse_precision(precision_));

  device_ = solver_device(param_, options_.device, [&](const std::string& line) { note(line); });

  // Nets. An inline net's errors name the solver file.
  auto load = [&](const std::string& p) { return read_net(resolve_path(p, solver_dir_)); };
  auto inline_net = [&](proto::NetParameter n, const char* field) {
    if (!n.has_source_file()) n.set_source_file(where + " (" + field + ")");
    return n;
  };
  proto::NetParameter train;
  bool generic = false;
  if (param_.has_train_net_param())
    train = inline_net(param_.train_net_param(), "train_net_param");
  else if (param_.has_train_net())
    train = load(param_.train_net());
  else if (param_.has_net_param())
    train = inline_net(param_.net_param(), "net_param"), generic = true;
  else if (param_.has_net())
    train = load(param_.net()), generic = true;
  else
    throw Error("solver: no net given");  // check_solver refused it already
  proto::NetParameter generic_net = train;
  if (param_.has_train_state()) *train.mutable_state() = param_.train_state();
  net_ = std::make_unique<Net>(train, proto::TRAIN, device_, seed_);

  std::vector<proto::NetParameter> tests;
  for (const auto& n : param_.test_net_param()) tests.push_back(inline_net(n, "test_net_param"));
  for (const auto& p : param_.test_net()) tests.push_back(load(p));
  if (param_.has_net_param() || param_.has_net()) {
    if (!generic) generic_net = param_.has_net_param() ? inline_net(param_.net_param(), "net_param") : load(param_.net());
    int extra = param_.test_iter_size() - static_cast<int>(tests.size());
    for (int i = 0; i < extra; ++i) tests.push_back(generic_net);
  }
  if (param_.test_interval() > 0 || param_.test_iter_size() > 0)
    MMF_CHECK(param_.test_iter_size() == static_cast<int>(tests.size()), Error, where, ": ", param_.test_iter_size(),
              " test_iter value(s) for ", tests.size(), " test net(s) (give one test_iter per test net)");
  for (size_t i = 0; i < tests.size(); ++i) {
    if (static_cast<int>(i) < param_.test_state_size()) *tests[i].mutable_state() = param_.test_state(static_cast<int>(i));
    test_nets_.push_back(std::make_unique<Net>(tests[i], proto::TEST, device_, seed_, net_.get()));
  }

  std::vector<OptimParam> ps;
  for (const Param& p : net_->learnable_params()) ps.push_back({p.name, p.value, p.lr_mult, p.decay_mult});
  optimizer_ = std::make_unique<Optimizer>(param_, std::move(ps));

  // Batch size: the smallest leading dim among the tops of the first layer (the data or Input
  // layer). A modality-stacked data top is [M*N, ...] while its label is [N, ...]: N samples.
  batch_size_ = 1;
  if (!net_->layers().empty()) {
    batch_size_ = -1;
    for (const auto& top : net_->top_names(0)) {
      const Shape& s = net_->blob_shape(top);
      int64_t n = s.empty() ? 1 : s[0];
      if (batch_size_ < 0 || n < batch_size_) {
        batch_size_ = n;
        batch_blob_ = top;
      }
    }
    if (batch_size_ < 0) batch_size_ = 1;
  }

  // Output paths.
  prefix_ = param_.snapshot_prefix();
  if (prefix_.empty())
    prefix_ = solver_file.empty() ? std::string("mmfuse") : fs::path(solver_file).replace_extension().string();
  if (prefix_.back() == '/') prefix_ += net_->name().empty() ? "mmfuse" : net_->name();
  metrics_ = MetricsLog(param_.has_metrics_file() ? param_.metrics_file() : prefix_ + "_metrics.jsonl");
  if (param_.snapshot_format() == proto::SolverParameter::HDF5)
    note("note: snapshot_format HDF5: mmfuse writes its own binary protobuf snapshots (.weights, .solverstate) "
         "whatever the format says");
  // Nothing is written (folders included) until training produces its first output.
  note("Solver: " + param_.type() + ", lr_policy " + param_.lr_policy() + ", base_lr " + format_number("%g", param_.base_lr()) +
       ", max_iter " + std::to_string(max_iter_) + ", iter_size " + std::to_string(param_.iter_size()) + ", device " +
       device_.str() + ", precision " + precision_ + ", random_seed " + std::to_string(seed_) +
       (param_.random_seed() < 0 ? " (random_seed -1 means 1: runs reproduce)" : "") +
       (data_parallel_ ? ", data-parallel over " + std::to_string(dist::world().size()) + " ranks (global batch " +
                             std::to_string(batch_size_ * dist::world().size()) + ")"
                       : std::string()));
}

Solver::~Solver() = default;

void Solver::note(const std::string& line) {
  if (!options_.out) return;
  if (tty_) std::fputs("\r\033[K", options_.out);
  std::fprintf(options_.out, "%s\n", line.c_str());
  std::fflush(options_.out);
}

double Solver::smoothed_loss() const {
  if (losses_.empty()) return 0;
  double s = 0;
  for (double v : losses_) s += v;
  return s / static_cast<double>(losses_.size());
}

CopyReport Solver::load_weights(const std::string& path) {
  CopyReport r = mmfuse::load_weights(*net_, path);
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
  if (!fs::exists(w)) {
    fs::path alt = fs::path(path).parent_path() / fs::path(w).filename();
    MMF_CHECK(fs::exists(alt), IOError, path, ": its weights file '", w, "' is missing (also looked for ",
              alt.string(), ")");
    w = alt.string();
  }
  try {
    optimizer_->load_state(st);
  } catch (const IOError& e) {
    throw IOError(path + ": " + e.what());
  }
  mmfuse::load_weights(*net_, w, /*strict=*/true);
  iter_ = st.iter();
  net_->generator().set_state(st.rng_seed(), st.rng_offset());
  losses_.assign(st.smoothed_loss().begin(), st.smoothed_loss().end());
  if (static_cast<int>(losses_.size()) > param_.average_loss())
    losses_.erase(losses_.begin(), losses_.end() - param_.average_loss());
  losses_pos_ = losses_.size() % static_cast<size_t>(param_.average_loss());
  metrics_.resume_at(iter_);
  // The earlier part of the training curve, from the records a resume keeps.
  curve_.reload(metrics_.path(), iter_, test_nets_.size());
  note("Resuming from " + path + " at iteration " + std::to_string(iter_) + " (weights " + w + ")");
}

Solver::Pending Solver::capture() const {
  Pending s;
  s.iter = iter_;
  s.weights = net_weights(*net_);
  optimizer_->save_state(s.state);
  s.state.set_iter(static_cast<int32_t>(iter_));
  s.state.set_rng_seed(net_->generator().seed());
  s.state.set_rng_offset(net_->generator().offset());
  // The window oldest first, so that a restore can continue the ring.
  size_t n = losses_.size();
  for (size_t i = 0; i < n; ++i) s.state.add_smoothed_loss(static_cast<float>(losses_[(losses_pos_ + i) % n]));
  return s;
}

std::string Solver::write_snapshot(const Pending& s) {
  std::string base = prefix_ + "_iter_" + std::to_string(s.iter);
  if (!root_) return last_snapshot_ = base + ".solverstate";  // rank 0 writes it
  create_parent(base);
  write_binary_atomic(base + ".weights", s.weights);
  proto::SolverState st = s.state;
  st.set_learned_net(base + ".weights");
  write_binary_atomic(base + ".solverstate", st);
  last_snapshot_ = base + ".solverstate";
  note("Snapshot at iteration " + std::to_string(s.iter) + ": " + base + ".weights, " + last_snapshot_);
  return last_snapshot_;
}

std::string Solver::snapshot() { return write_snapshot(capture()); }

namespace {
// "NaN" or "Inf" for a non-finite value.
const char* non_finite(double v) { return std::isnan(v) ? "NaN" : "Inf"; }
}  // namespace

std::string Solver::check_weights(const Pending& current) {
  std::string bad;
  for (int k = 0; k < param_.iter_size() && bad.empty(); ++k) {
    net_->forward({}, static_cast<int64_t>(iter_) * param_.iter_size() + k);
    Tensor l = net_->loss();
    double lv = l.item();
    if (!std::isfinite(lv))
      bad = std::string("the loss is ") + non_finite(lv);
    else if (l.requires_grad())
      (l * (1.0 / param_.iter_size())).backward();
  }
  if (bad.empty())
    for (const OptimParam& p : optimizer_->params()) {
      Tensor g = p.value.grad();
      if (!g.defined()) continue;
      Tensor g64 = g.to(DType::f64);
      double sq = sum(g64 * g64).item();
      if (!std::isfinite(sq)) {
        bad = std::string("the gradient of ") + p.name + " is " + non_finite(sq);
        break;
      }
    }
  optimizer_->zero_grad();
  // Put back what the checking forward changed: BN statistics and the generator.
  copy_weights(*net_, current.weights, /*strict=*/true);
  net_->generator().set_state(current.state.rng_seed(), current.state.rng_offset());
  return bad;
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
  if (data_parallel_) data_parallel_->broadcast_state(*net_, iter_);
  std::vector<TestResult> results;
  for (size_t i = 0; i < test_nets_.size(); ++i) {
    note("Iteration " + std::to_string(iter_) + ", Testing net #" + std::to_string(i));
    TestResult r = evaluate(*test_nets_[i], param_.test_iter(static_cast<int>(i)), "Test net");
    std::string text = r.format_with_loss_weights(*test_nets_[i]);
    if (!text.empty()) text.pop_back();
    note(text);
    if (root_) metrics_.write_test(iter_, i, r);
    curve_.add_test(iter_, i, test_nets_.size(), r);
    results.push_back(std::move(r));
  }
  if (!test_nets_.empty()) write_curve();
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

Solver::Outcome Solver::solve() {
  SignalScope signals(options_.handle_signals);
  g_unblock_output_on_stop.store(data_parallel_ != nullptr);
  message_.clear();
  const int iter_size = param_.iter_size();
  const int display_every = param_.display();
  const int64_t start_iter = iter_;
  const auto start = Clock::now();
  auto last_display = start;
  int64_t last_display_iter = iter_;
  int64_t snapshot_iter = -1;
  if (data_parallel_) {
    data_parallel_->broadcast_parameters(*net_, "at the start (from rank 0)");
    data_parallel_->own_dropout_stream(net_->generator());
  }
  note("Solving " + (net_->name().empty() ? std::string("the net") : net_->name()) + " from iteration " +
       std::to_string(iter_) + " to " + std::to_string(max_iter_) + " (batch " + std::to_string(batch_size_) +
       " from blob '" + batch_blob_ + "' x iter_size " + std::to_string(iter_size) + ")");
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
    if (data_parallel_) data_parallel_->broadcast_state(*net_, iter_);
    double loss = 0;
    std::vector<std::pair<std::string, double>> outputs;
    for (int k = 0; k < iter_size; ++k) {
      auto blobs = net_->forward({}, static_cast<int64_t>(iter_) * iter_size + k);
      Tensor l = net_->loss();
      double lv = l.item();
      if (!std::isfinite(lv)) {
        std::string culprit = "loss";
        for (const auto& [n, w] : net_->loss_weights())
          if (!std::isfinite(mean_of(blobs.at(n)))) {
            culprit = n;
            break;
          }
        divergence(std::string("the loss is ") + non_finite(lv) + " (output '" + culprit + "')");
        // The other ranks saw a finite loss and wait for this one: stop the job.
        if (data_parallel_) data_parallel_->world().abort(message_, 3);
        return Outcome::diverged;
      }
      loss += lv / iter_size;
      // The last sub-batch's backward makes the gradients final: their buckets start during it.
      if (data_parallel_ && k == iter_size - 1) data_parallel_->start_backward(optimizer_->params(), iter_);
      if (l.requires_grad()) (l * (1.0 / iter_size)).backward();
      if (show) {
        const auto& outs = net_->output_names();
        if (outputs.empty())
          for (const auto& n : outs) outputs.emplace_back(n, 0.0);
        for (size_t i = 0; i < outs.size(); ++i) outputs[i].second += mean_of(blobs.at(outs[i])) / iter_size;
      }
    }
    // The signals as seen now; under data parallelism the ranks agree on them (and average the
    // loss and the gradients), so that all stop or snapshot at the same iteration.
    bool want_stop = g_stop.load(), want_snapshot = g_snapshot.exchange(false);
    if (data_parallel_) {
      std::vector<double> shown;
      for (const auto& o : outputs) shown.push_back(o.second);
      DataParallel::Agreed a = data_parallel_->agree(loss, shown, want_stop, want_snapshot, iter_);
      loss = a.loss, want_stop = a.stop, want_snapshot = a.snapshot;
      for (size_t i = 0; i < outputs.size(); ++i) outputs[i].second = a.outputs[i];
      data_parallel_->average_gradients(optimizer_->params(), iter_);
      if (iter_ == start_iter)
        note("Gradient all-reduce: " + std::to_string(data_parallel_->buckets().size()) + " buckets of <= " +
             format_number("%g", param_.allreduce_bucket_mb()) + " MiB, " +
             (data_parallel_->overlap()
                  ? std::to_string(data_parallel_->started_during_backward()) + " of them started during backward"
                  : std::string("all after backward (allreduce_overlap: false)")));
    }
    double lr = learning_rate(param_, iter_);
    double grad_norm = optimizer_->step(lr);
    optimizer_->zero_grad();
    if (!std::isfinite(grad_norm)) {
      divergence(std::string("the gradients are ") + non_finite(grad_norm) + " (their norm)");
      return Outcome::diverged;
    }
    // This iteration's loss and gradients show the captured weights good.
    if (pending_) {
      write_snapshot(*pending_);
      pending_.reset();
    }

    if (static_cast<int>(losses_.size()) < param_.average_loss()) {
      losses_.push_back(loss);
    } else {
      losses_[losses_pos_] = loss;
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
      std::string line = "Iteration " + std::to_string(iter_) + " (" + format_number("%.4g", sps) + " samples/s), loss = " +
                         format_number("%.6g", smoothed) + ", lr = " + format_number("%.6g", lr) + ", elapsed " + duration_str(elapsed) +
                         ", ETA " + eta_;
      for (size_t i = 0; i < outputs.size(); ++i) {
        float w = loss_weight_of(*net_, outputs[i].first);
        line += "\n    Train net output #" + std::to_string(i) + ": " + outputs[i].first + " = " +
                format_number("%.6g", outputs[i].second) +
                (w != 0 ? " (* " + format_number("%g", w) + " = " + format_number("%.6g", w * outputs[i].second) + " loss)" : "");
      }
      note(line);
      std::vector<std::pair<std::string, std::vector<double>>> figures;
      for (const auto& layer : net_->layers())
        if (auto f = layer->logged_figures(); !f.empty()) figures.emplace_back(layer->name(), std::move(f));
      if (root_) metrics_.write_train(iter_, lr, smoothed, outputs, grad_norm, sps, elapsed, figures);
      curve_.add_train(iter_, smoothed);
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
