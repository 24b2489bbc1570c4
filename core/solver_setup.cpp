// Building a Solver from its SolverParameter: every setting checked, the device, the players
// (the one net with its test nets, or one per `player { }`), their optimizers and the Game.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>

#include "base/format.h"
#include "core/adversarial.h"
#include "core/prototxt.h"
#include "core/solver.h"
#include "cuda/precision.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace mmfuse {

namespace fs = std::filesystem;

int visible_gpus() {
#ifdef MMFUSE_WITH_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

namespace {

// The device a solver trains on: `requested` (--gpu), else solver_mode / device_id. With no CUDA
// device visible, the CPU, after a note through `note`; an index past the visible devices is a
// DeviceError.
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

std::string resolve_path(const std::string& path, const std::string& dir) {
  if (path.empty() || fs::exists(path) || dir.empty() || fs::path(path).is_absolute()) return path;
  fs::path alt = fs::path(dir) / path;
  return fs::exists(alt) ? alt.string() : path;
}

void refuse(const std::string& what) { throw Error(what); }

// The optimizer's settings (those a `player` may override), and a finite rate over the run.
void check_optimizer(const proto::SolverParameter& p, int64_t max_iter) {
  if (!std::isfinite(p.base_lr()) || p.base_lr() < 0) refuse("base_lr must be >= 0, got " + format_number("%g", p.base_lr()));
  if (!std::isfinite(p.weight_decay()) || p.weight_decay() < 0)
    refuse("weight_decay must be >= 0, got " + format_number("%g", p.weight_decay()));
  if (!(p.momentum() >= 0 && p.momentum() < 1)) refuse("momentum must be in [0, 1), got " + format_number("%g", p.momentum()));
  if (!(p.momentum2() >= 0 && p.momentum2() < 1)) refuse("momentum2 must be in [0, 1), got " + format_number("%g", p.momentum2()));
  if (!(p.delta() > 0)) refuse("delta must be > 0, got " + format_number("%g", p.delta()));
  check_solver_type(p);
  // The policy's own checks (unknown name, stepsize, step_factor count) and a finite rate
  // over the whole run.
  for (int64_t it : {int64_t{0}, std::max<int64_t>(max_iter, 1) - 1}) {
    double lr = learning_rate(p, it);
    if (!std::isfinite(lr) || lr < 0)
      refuse("lr_policy " + p.lr_policy() + " gives the rate " + format_number("%g", lr) + " at iteration " + std::to_string(it));
  }
}

// Every setting of the run checked before a net is built or a file touched: the first problem,
// naming the field (Caffe refuses the same: one train net, a non-negative rate, ascending step
// values). The optimizer's settings of a solver with `player`s are checked per player.
void check_solver(const proto::SolverParameter& p, int64_t max_iter_override) {
  int nets = p.has_net() + p.has_net_param() + p.has_train_net() + p.has_train_net_param();
  if (p.player_size() > 0) {
    if (nets > 0 || p.test_net_size() || p.test_net_param_size())
      refuse("with `player`s, each player names its net (net, net_param, train_net and test_net are not used)");
    if (!p.has_adversarial())
      refuse("`player`s need a schedule: `adversarial { }` (the one multi-net schedule so far, docs/translation.md)");
    if (p.iter_size() != 1) refuse("iter_size must be 1 with `player`s, got " + std::to_string(p.iter_size()));
    if (p.test_iter_size() > 0) refuse("with `player`s, give test_iter in each player (its TEST net's batches)");
    if (p.weights_size() > 0)
      refuse("`weights` (fine-tuning) is for single-net solvers; with `player`s, resume with --snapshot");
    if (dist::world().distributed())
      refuse("this solver trains `player`s; the multi-net solver runs in one process (no mpirun)");
  } else {
    if (nets == 0) refuse("no net given (set one of net, net_param, train_net, train_net_param)");
    if (nets > 1) refuse("more than one train net given (net, net_param, train_net, train_net_param: set exactly one)");
  }
  if (p.max_iter() < 0) refuse("max_iter must be >= 0, got " + std::to_string(p.max_iter()));
  if (max_iter_override < -1) refuse("--max-iter must be >= 0, got " + std::to_string(max_iter_override));
  const int64_t max_iter = max_iter_override >= 0 ? max_iter_override : p.max_iter();
  if (p.iter_size() < 1) refuse("iter_size must be >= 1, got " + std::to_string(p.iter_size()));
  if (p.average_loss() < 1) refuse("average_loss must be >= 1, got " + std::to_string(p.average_loss()));
  if (p.test_interval() > 0 && p.test_iter_size() == 0 && p.player_size() == 0)
    refuse("test_interval " + std::to_string(p.test_interval()) +
        " needs a test_iter (batches per test) for each test net; none given");
  for (int i = 0; i < p.test_iter_size(); ++i)
    if (p.test_iter(i) <= 0)
      refuse("test_iter must be > 0, got " + std::to_string(p.test_iter(i)) +
          (p.test_iter_size() > 1 ? " (value #" + std::to_string(i) + ")" : std::string()));
  for (auto [name, v] : {std::pair<const char*, int>{"test_interval", p.test_interval()}, {"display", p.display()},
                         {"snapshot", p.snapshot()}, {"warmup_iter", p.warmup_iter()}, {"stepsize", p.stepsize()}})
    if (v < 0) refuse(std::string(name) + " must be >= 0, got " + std::to_string(v));
  for (int i = 0; i < p.stepvalue_size(); ++i) {
    if (p.stepvalue(i) < 0) refuse("stepvalue must be >= 0, got " + std::to_string(p.stepvalue(i)));
    if (i > 0 && p.stepvalue(i) <= p.stepvalue(i - 1))
      refuse("stepvalue must ascend, got " + std::to_string(p.stepvalue(i - 1)) + " then " + std::to_string(p.stepvalue(i)));
  }
  if (p.precision() != "fp32" && p.precision() != "tf32")
    refuse("precision must be fp32 or tf32, got '" + p.precision() + "'");
  if (p.player_size() == 0) check_optimizer(p, max_iter);
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
  if (param_.player_size() > 0)
    build_players(where);
  else
    build_net(where);
  for (Player& p : players_) {
    std::vector<OptimParam> ps;
    for (const Param& q : p.net->learnable_params()) ps.push_back({p.scope() + q.name, q.value, q.lr_mult, q.decay_mult});
    p.optimizer = std::make_unique<Optimizer>(p.optim, std::move(ps));
  }

  // Batch size: the smallest leading dim among the tops of the first player's first layer (the
  // data or Input layer). A modality-stacked data top is [M*N, ...] while its label is [N, ...]:
  // N samples.
  const Net& first = *players_[0].net;
  batch_size_ = 1;
  if (!first.layers().empty()) {
    batch_size_ = -1;
    for (const auto& top : first.top_names(0)) {
      const Shape& s = first.blob_shape(top);
      int64_t n = s.empty() ? 1 : s[0];
      if (batch_size_ < 0 || n < batch_size_) {
        batch_size_ = n;
        batch_blob_ = top;
      }
    }
    if (batch_size_ < 0) batch_size_ = 1;
  }
  if (param_.player_size() > 0) {
    try {
      game_ = make_adversarial_game(param_.adversarial(), players_);
    } catch (const Error& e) {
      throw Error(where + ": adversarial: " + e.what());
    }
  } else {
    game_ = make_supervised_game(param_, data_parallel_.get());
  }

  // Output paths.
  prefix_ = param_.snapshot_prefix();
  if (prefix_.empty())
    prefix_ = solver_file.empty() ? std::string("mmfuse") : fs::path(solver_file).replace_extension().string();
  if (prefix_.back() == '/')
    prefix_ += players_[0].name.empty() && !first.name().empty() ? first.name() : std::string("mmfuse");
  metrics_ = MetricsLog(param_.has_metrics_file() ? param_.metrics_file() : prefix_ + "_metrics.jsonl");
  if (param_.snapshot_format() == proto::SolverParameter::HDF5)
    note("note: snapshot_format HDF5: mmfuse writes its own binary protobuf snapshots (.weights, .solverstate) "
         "whatever the format says");
  // Nothing is written (folders included) until training produces its first output.
  std::string line = "Solver: " + game_->describe() + ", max_iter " + std::to_string(max_iter_) + ", iter_size " +
                     std::to_string(param_.iter_size()) + ", device " + device_.str() + ", precision " + precision_ +
                     ", random_seed " + std::to_string(seed_) +
                     (param_.random_seed() < 0 ? " (random_seed -1 means 1: runs reproduce)" : "") +
                     (data_parallel_ ? ", data-parallel over " + std::to_string(dist::world().size()) +
                                           " ranks (global batch " + std::to_string(batch_size_ * dist::world().size()) + ")"
                                     : std::string());
  for (const Player& p : players_)
    if (!p.name.empty())
      line += "\n    player " + p.name + ": " + p.optim.type() + ", base_lr " + format_number("%g", p.optim.base_lr()) +
              ", lr_policy " + p.optim.lr_policy() + ", " + std::to_string(p.net->num_learnable()) + " parameters" +
              (p.tests.empty() ? std::string() : ", test_iter " + std::to_string(p.tests[0].iterations));
  note(line);
}

// The one net of a solver without `player`s: the train net and its test nets (Caffe's fields).
// An inline net's errors name the solver file.
void Solver::build_net(const std::string& where) {
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
  else
    train = load(param_.net()), generic = true;  // check_solver refused a solver without a net
  proto::NetParameter generic_net = train;
  if (param_.has_train_state()) *train.mutable_state() = param_.train_state();
  Player& player = players_.emplace_back();
  player.optim = param_;
  player.net = std::make_unique<Net>(train, proto::TRAIN, device_, seed_);

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
    player.tests.push_back({std::make_unique<Net>(tests[i], proto::TEST, device_, seed_, player.net.get()),
                            static_cast<int>(i) < param_.test_iter_size() ? param_.test_iter(static_cast<int>(i)) : 0});
  }
}

// One player per `player { }`, each with its own net, TEST net and optimizer settings.
void Solver::build_players(const std::string& where) {
  std::set<std::string> names;
  for (int i = 0; i < param_.player_size(); ++i) {
    const proto::PlayerParameter& pp = param_.player(i);
    const std::string label = "player #" + std::to_string(i) + " '" + pp.name() + "'";
    auto refuse_player = [&](const std::string& what) { throw Error(where + ": " + label + ": " + what); };
    if (pp.name().empty() || pp.name().find_first_of("/ ") != std::string::npos) refuse_player("needs a name without '/' or spaces");
    if (!names.insert(pp.name()).second) refuse_player("the name is given twice");
    if (pp.has_net() == pp.has_net_param()) refuse_player("give exactly one of net, net_param");
    if (pp.test_iter() < 0) refuse_player("test_iter must be >= 0, got " + std::to_string(pp.test_iter()));
    Player& p = players_.emplace_back();
    p.name = pp.name();
    p.optim = player_optim(param_, pp);
    try {
      check_optimizer(p.optim, max_iter_);
    } catch (const Error& e) {
      refuse_player(e.what());
    }
    proto::NetParameter net;
    if (pp.has_net_param()) {
      net = pp.net_param();
      if (!net.has_source_file()) net.set_source_file(where + " (" + label + " net_param)");
    } else {
      net = read_net(resolve_path(pp.net(), solver_dir_));
    }
    p.net = std::make_unique<Net>(net, proto::TRAIN, device_, seed_);
    if (pp.test_iter() > 0)
      p.tests.push_back({std::make_unique<Net>(net, proto::TEST, device_, seed_, p.net.get()), pp.test_iter()});
  }
}

}  // namespace mmfuse
