#include "core/solver.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <set>

#include "core/ops.h"
#include "core/plot.h"
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
extern "C" void on_sigint(int) { g_stop.store(true); }
extern "C" void on_sighup(int) { g_snapshot.store(true); }

// Installs the handlers for the life of solve() and puts the previous ones back.
class SignalScope {
 public:
  explicit SignalScope(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sa.sa_handler = on_sighup;
    sigaction(SIGHUP, &sa, &old_hup_);
  }
  ~SignalScope() {
    if (!enabled_) return;
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGHUP, &old_hup_, nullptr);
  }

 private:
  bool enabled_;
  struct sigaction old_int_ {}, old_hup_ {};
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

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

std::string json_num(double v) { return std::isfinite(v) ? fmt("%.9g", v) : "null"; }
std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt("\\u%04x", static_cast<unsigned char>(c));
      continue;
    }
    out += c;
  }
  return out + "\"";
}

double rss_mb() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages = 0, resident = 0;
  int n = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
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

std::set<std::string> segmentation_tops(const Net& net) {
  std::set<std::string> out;
  for (size_t i = 0; i < net.layers().size(); ++i)
    if (net.layers()[i]->type() == "SegmentationMetric")
      for (const auto& t : net.top_names(i)) out.insert(t);
  return out;
}

float loss_weight_of(const Net& net, const std::string& blob) {
  for (const auto& [name, w] : net.loss_weights())
    if (name == blob) return w;
  return 0;
}

}  // namespace

void request_snapshot() { g_snapshot.store(true); }
void request_stop() { g_stop.store(true); }

// ---- evaluation ----------------------------------------------------------------------------------

SegmentationScores segmentation_scores(const std::vector<double>& c, int64_t k) {
  MMF_CHECK(static_cast<int64_t>(c.size()) == k * k, Error, "segmentation_scores: ", c.size(),
            " counts for ", k, " classes");
  SegmentationScores s;
  s.confusion = c;
  s.class_iou.assign(static_cast<size_t>(k), std::nan(""));
  s.class_accuracy.assign(static_cast<size_t>(k), std::nan(""));
  double total = 0, diag = 0, acc_sum = 0, iou_sum = 0;
  int64_t acc_n = 0, iou_n = 0;
  for (int64_t i = 0; i < k; ++i) {
    double row = 0, col = 0;
    for (int64_t j = 0; j < k; ++j) {
      row += c[i * k + j];
      col += c[j * k + i];
    }
    double tp = c[i * k + i];
    total += row;
    diag += tp;
    if (row > 0) {
      s.class_accuracy[static_cast<size_t>(i)] = 100 * tp / row;
      acc_sum += tp / row;
      ++acc_n;
    }
    double uni = row + col - tp;
    if (uni > 0) {
      s.class_iou[static_cast<size_t>(i)] = 100 * tp / uni;
      iou_sum += tp / uni;
      ++iou_n;
    }
  }
  s.pixel_accuracy = total > 0 ? 100 * diag / total : 0;
  s.mean_accuracy = acc_n ? 100 * acc_sum / static_cast<double>(acc_n) : 0;
  s.mean_iou = iou_n ? 100 * iou_sum / static_cast<double>(iou_n) : 0;
  return s;
}

std::string TestResult::format() const {
  std::string out;
  for (size_t i = 0; i < outputs.size(); ++i)
    out += "    " + net + " output #" + std::to_string(i) + ": " + outputs[i].first + " = " +
           fmt("%.6g", outputs[i].second) + "\n";
  if (!segmentation.empty()) {
    size_t w = 12;
    for (const auto& s : segmentation) w = std::max(w, s.name.size());
    std::string head = "segmentation";
    out += "    " + head + std::string(w - head.size(), ' ') + "  pixel acc  mean acc   mIoU\n";
    for (const auto& s : segmentation)
      out += "    " + s.name + std::string(w - s.name.size(), ' ') + fmt("  %9.2f", s.pixel_accuracy) +
             fmt("  %8.2f", s.mean_accuracy) + fmt("  %6.2f", s.mean_iou) + "\n";
  }
  return out;
}

namespace {
std::string right(size_t v, int width, const char* before = "") {  // v right-aligned in `width` columns
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%*zu", before, width, v);
  return buf;
}
std::string cell(double v, const char* format) { return std::isnan(v) ? std::string("      -") : fmt(format, v); }
}  // namespace

std::string TestResult::format_per_class() const {
  std::string out;
  for (const auto& s : segmentation) {
    out += "    " + s.name + ": class    IoU    acc\n";
    for (size_t i = 0; i < s.class_iou.size(); ++i)
      out += right(i, 5, "      ") + cell(s.class_iou[i], " %6.2f") + cell(s.class_accuracy[i], " %6.2f") + "\n";
  }
  return out;
}

std::string TestResult::format_confusion() const {
  std::string out;
  for (const auto& s : segmentation) {
    size_t k = s.class_iou.size();
    out += "    " + s.name + ": % of each ground-truth class (rows) predicted as (columns)\n        ";
    for (size_t j = 0; j < k; ++j) out += right(j, 5, " ");
    out += "\n";
    for (size_t i = 0; i < k; ++i) {
      double row = 0;
      for (size_t j = 0; j < k; ++j) row += s.confusion[i * k + j];
      out += right(i, 3, "    ") + " ";
      for (size_t j = 0; j < k; ++j) out += row > 0 ? fmt(" %5.1f", 100 * s.confusion[i * k + j] / row) : "     -";
      out += "\n";
    }
  }
  return out;
}

TestResult evaluate(Net& net, int iterations, const std::string& label) {
  MMF_CHECK(iterations > 0, Error, "test: the number of iterations must be positive, got ", iterations);
  autograd::NoGradGuard no_grad;
  std::set<std::string> seg = segmentation_tops(net);
  std::vector<std::string> names = net.output_names();
  for (const auto& s : seg)
    if (std::find(names.begin(), names.end(), s) == names.end()) names.push_back(s);
  std::map<std::string, std::vector<double>> sums;
  std::map<std::string, Shape> shapes;
  for (int it = 0; it < iterations; ++it) {
    auto blobs = net.forward({}, it);
    for (const auto& n : names) {
      const Tensor& t = blobs.at(n);
      std::vector<double> v = t.to_vector<double>();
      auto& acc = sums[n];
      if (acc.empty()) {
        acc.assign(v.size(), 0.0);
        shapes[n] = t.shape();
      }
      MMF_CHECK(acc.size() == v.size(), Error, "test: output '", n, "' changed size between batches");
      for (size_t i = 0; i < v.size(); ++i) acc[i] += v[i];
    }
  }
  TestResult r;
  r.net = label;
  for (const auto& n : names) {
    const auto& acc = sums[n];
    if (seg.count(n)) {
      const Shape& s = shapes[n];
      MMF_CHECK(s.size() == 3 && s[1] == s[2], Error, "test: SegmentationMetric top '", n, "' has shape ",
                shape_str(s), ", expected [M, K, K]");
      int64_t m = s[0], k = s[1];
      for (int64_t b = 0; b < m; ++b) {
        std::vector<double> c(acc.begin() + b * k * k, acc.begin() + (b + 1) * k * k);
        SegmentationScores sc = segmentation_scores(c, k);
        if (m == 1)
          sc.name = n;
        else
          sc.name = (seg.size() > 1 ? n + " " : std::string()) + "branch " + std::to_string(b);
        r.segmentation.push_back(sc);
      }
      continue;
    }
    if (acc.size() == 1) {
      r.outputs.emplace_back(n, acc[0] / iterations);
    } else {
      for (size_t i = 0; i < acc.size(); ++i)
        r.outputs.emplace_back(n + "[" + std::to_string(i) + "]", acc[i] / iterations);
    }
  }
  return r;
}

// ---- the solver ------------------------------------------------------------------------------

namespace {
std::string resolve_path(const std::string& path, const std::string& dir) {
  if (path.empty() || fs::exists(path) || dir.empty() || fs::path(path).is_absolute()) return path;
  fs::path alt = fs::path(dir) / path;
  return fs::exists(alt) ? alt.string() : path;
}
}  // namespace

Solver::Solver(const proto::SolverParameter& param, const std::string& solver_file, SolverOptions options)
    : param_(param), options_(std::move(options)) {
  if (!solver_file.empty()) solver_dir_ = fs::path(solver_file).parent_path().string();
  tty_ = options_.out && isatty(fileno(options_.out));
  seed_ = param_.random_seed() < 0 ? 1 : static_cast<uint64_t>(param_.random_seed());
  max_iter_ = options_.max_iter >= 0 ? options_.max_iter : param_.max_iter();
  MMF_CHECK(param_.iter_size() >= 1, Error, "solver: iter_size must be >= 1, got ", param_.iter_size());
  MMF_CHECK(param_.average_loss() >= 1, Error, "solver: average_loss must be >= 1, got ", param_.average_loss());
  precision_ = options_.precision.empty() ? param_.precision() : options_.precision;
  MMF_CHECK(precision_ == "fp32" || precision_ == "tf32", Error, "solver: precision must be fp32 or tf32, got '",
            precision_, "'");
  // One switch for the solver: products in cuBLAS and convolutions in cuDNN alike.
  cuda::set_precision(cuda::parse_precision(precision_));

  // Device: --gpu, else solver_mode/device_id; no visible CUDA device -> CPU with a note.
  Device want = options_.device ? *options_.device
                                : (param_.solver_mode() == proto::SolverParameter::GPU ? Device::cuda(param_.device_id())
                                                                                       : Device::cpu());
  if (want.is_cuda()) {
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
      want = Device::cpu();
    } else {
      MMF_CHECK(want.index < n, DeviceError, "solver: CUDA device ", want.index, " requested, ", n, " visible");
    }
  }
  device_ = want;

  // Nets.
  auto load = [&](const std::string& p) { return read_net(resolve_path(p, solver_dir_)); };
  proto::NetParameter train;
  bool generic = false;
  if (param_.has_train_net_param())
    train = param_.train_net_param();
  else if (param_.has_train_net())
    train = load(param_.train_net());
  else if (param_.has_net_param())
    train = param_.net_param(), generic = true;
  else if (param_.has_net())
    train = load(param_.net()), generic = true;
  else
    throw Error("solver: no net given (set net, net_param, train_net or train_net_param)");
  proto::NetParameter generic_net = train;
  if (param_.has_train_state()) *train.mutable_state() = param_.train_state();
  net_ = std::make_unique<Net>(train, proto::TRAIN, device_, seed_);

  std::vector<proto::NetParameter> tests(param_.test_net_param().begin(), param_.test_net_param().end());
  for (const auto& p : param_.test_net()) tests.push_back(load(p));
  if (param_.has_net_param() || param_.has_net()) {
    if (!generic) generic_net = param_.has_net_param() ? param_.net_param() : load(param_.net());
    int extra = param_.test_iter_size() - static_cast<int>(tests.size());
    for (int i = 0; i < extra; ++i) tests.push_back(generic_net);
  }
  if (param_.test_interval() > 0 || param_.test_iter_size() > 0)
    MMF_CHECK(param_.test_iter_size() == static_cast<int>(tests.size()), Error, "solver: ", param_.test_iter_size(),
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
  metrics_path_ = param_.has_metrics_file() ? param_.metrics_file() : prefix_ + "_metrics.jsonl";
  for (const std::string& f : {prefix_ + "_x", metrics_path_}) {
    fs::path dir = fs::path(f).parent_path();
    if (dir.empty()) continue;
    std::error_code ec;
    fs::create_directories(dir, ec);
    MMF_CHECK(!ec, IOError, dir.string(), ": cannot create the folder (", ec.message(), ")");
  }
  note("Solver: " + param_.type() + ", lr_policy " + param_.lr_policy() + ", base_lr " + fmt("%g", param_.base_lr()) +
       ", max_iter " + std::to_string(max_iter_) + ", iter_size " + std::to_string(param_.iter_size()) + ", device " +
       device_.str() + ", precision " + precision_ + ", random_seed " + std::to_string(seed_) +
       (param_.random_seed() < 0 ? " (random_seed -1 means 1: runs reproduce)" : ""));
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
  CopyReport r = copy_weights(*net_, read_weights(path));
  note("Fine-tuning from " + path + ":\n" + r.table());
  return r;
}

void Solver::restore(const std::string& path) {
  proto::SolverState st;
  read_binary(path, st);
  std::string w = st.learned_net();
  if (!fs::exists(w)) {
    fs::path alt = fs::path(path).parent_path() / fs::path(w).filename();
    MMF_CHECK(fs::exists(alt), IOError, path, ": its weights file '", w, "' is missing (also looked for ",
              alt.string(), ")");
    w = alt.string();
  }
  copy_weights(*net_, read_weights(w), /*strict=*/true);
  optimizer_->load_state(st);
  iter_ = st.iter();
  net_->generator().set_state(st.rng_seed(), st.rng_offset());
  losses_.assign(st.smoothed_loss().begin(), st.smoothed_loss().end());
  if (static_cast<int>(losses_.size()) > param_.average_loss())
    losses_.erase(losses_.begin(), losses_.end() - param_.average_loss());
  losses_pos_ = losses_.size() % static_cast<size_t>(param_.average_loss());
  resumed_ = true;
  note("Resuming from " + path + " at iteration " + std::to_string(iter_) + " (weights " + w + ")");
}

std::string Solver::snapshot() {
  std::string base = prefix_ + "_iter_" + std::to_string(iter_);
  save_weights(*net_, base + ".weights");
  proto::SolverState st;
  optimizer_->save_state(st);
  st.set_iter(static_cast<int32_t>(iter_));
  st.set_learned_net(base + ".weights");
  st.set_rng_seed(net_->generator().seed());
  st.set_rng_offset(net_->generator().offset());
  // The window oldest first, so that a restore can continue the ring.
  size_t n = losses_.size();
  for (size_t i = 0; i < n; ++i) st.add_smoothed_loss(static_cast<float>(losses_[(losses_pos_ + i) % n]));
  write_binary_atomic(base + ".solverstate", st);
  last_snapshot_ = base + ".solverstate";
  note("Snapshot at iteration " + std::to_string(iter_) + ": " + base + ".weights, " + last_snapshot_);
  return last_snapshot_;
}

void Solver::write_metrics(const std::string& line) {
  const char* mode = (resumed_ || metrics_started_) ? "a" : "w";
  std::FILE* f = std::fopen(metrics_path_.c_str(), mode);
  MMF_CHECK(f != nullptr, IOError, metrics_path_, ": cannot open for writing");
  std::fprintf(f, "%s\n", line.c_str());
  std::fclose(f);
  metrics_started_ = true;
}

std::vector<TestResult> Solver::test_all() {
  std::vector<TestResult> results;
  for (size_t i = 0; i < test_nets_.size(); ++i) {
    note("Iteration " + std::to_string(iter_) + ", Testing net #" + std::to_string(i));
    TestResult r = evaluate(*test_nets_[i], param_.test_iter(static_cast<int>(i)), "Test net");
    std::string text;
    for (size_t k = 0; k < r.outputs.size(); ++k) {
      const auto& [n, v] = r.outputs[k];
      float w = loss_weight_of(*test_nets_[i], n);
      text += "    Test net output #" + std::to_string(k) + ": " + n + " = " + fmt("%.6g", v) +
              (w != 0 ? " (* " + fmt("%g", w) + " = " + fmt("%.6g", w * v) + " loss)" : "") + "\n";
    }
    TestResult seg_only = r;
    seg_only.outputs.clear();
    text += seg_only.format();
    if (!text.empty()) text.pop_back();
    note(text);
    std::string json = "{\"phase\":\"test\",\"iter\":" + std::to_string(iter_) + ",\"net\":" + std::to_string(i) +
                       ",\"outputs\":{";
    for (size_t k = 0; k < r.outputs.size(); ++k) {
      if (k) json += ',';
      json += json_str(r.outputs[k].first) + ":" + json_num(r.outputs[k].second);
    }
    json += "}";
    if (!r.segmentation.empty()) {
      json += ",\"segmentation\":{";
      for (size_t k = 0; k < r.segmentation.size(); ++k) {
        const auto& s = r.segmentation[k];
        if (k) json += ',';
        json += json_str(s.name) + ":{\"pixel_acc\":" + json_num(s.pixel_accuracy) +
                ",\"mean_acc\":" + json_num(s.mean_accuracy) + ",\"miou\":" + json_num(s.mean_iou) + "}";
      }
      json += "}";
    }
    write_metrics(json + "}");
    std::string pre = test_nets_.size() > 1 ? "test" + std::to_string(i) + " " : "test ";
    auto add = [&](const std::string& n, double v) {
      std::string key = pre + n;
      if (!test_curves_.count(key)) test_curve_order_.push_back(key);
      test_curves_[key].emplace_back(static_cast<double>(iter_), v);
    };
    for (const auto& [n, v] : r.outputs) add(n, v);
    for (const auto& s : r.segmentation) add(s.name + " mIoU", s.mean_iou);
    results.push_back(std::move(r));
  }
  if (!test_nets_.empty()) write_curve();
  return results;
}

void Solver::write_curve() {
  std::vector<PlotSeries> losses, metrics;
  if (!train_curve_.empty()) losses.push_back({"train loss (smoothed)", train_curve_});
  for (const auto& key : test_curve_order_) {
    bool is_loss = key.find("loss") != std::string::npos;
    (is_loss ? losses : metrics).push_back({key, test_curves_[key]});
  }
  if (losses.empty() && metrics.empty()) return;
  try {
    plot_training_curve(curve_path(), losses, metrics);
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
  g_stop.store(false);
  g_snapshot.store(false);
  message_.clear();
  const int iter_size = param_.iter_size();
  const int display_every = param_.display();
  const int64_t start_iter = iter_;
  const auto start = Clock::now();
  auto last_display = start;
  int64_t last_display_iter = iter_;
  int64_t snapshot_iter = -1;
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
        message_ = "iteration " + std::to_string(iter_) + ": the loss is " + (std::isnan(lv) ? "NaN" : "Inf") +
                   " (output '" + culprit + "'); training stopped without a snapshot" +
                   (last_snapshot_.empty() ? std::string() : " (the last good one is " + last_snapshot_ + ")");
        note(message_);
        return Outcome::diverged;
      }
      loss += lv / iter_size;
      if (l.requires_grad()) (l * (1.0 / iter_size)).backward();
      if (show) {
        const auto& outs = net_->output_names();
        if (outputs.empty())
          for (const auto& n : outs) outputs.emplace_back(n, 0.0);
        for (size_t i = 0; i < outs.size(); ++i) outputs[i].second += mean_of(blobs.at(outs[i])) / iter_size;
      }
    }
    double lr = learning_rate(param_, iter_);
    double grad_norm = optimizer_->step(lr);
    optimizer_->zero_grad();

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
      double sps = secs > 0 ? static_cast<double>(iters * batch_size_ * iter_size) / secs : 0;
      std::string line = "Iteration " + std::to_string(iter_) + " (" + fmt("%.4g", sps) + " samples/s), loss = " +
                         fmt("%.6g", smoothed) + ", lr = " + fmt("%.6g", lr) + ", elapsed " + duration_str(elapsed) +
                         ", ETA " + eta_;
      for (size_t i = 0; i < outputs.size(); ++i) {
        float w = loss_weight_of(*net_, outputs[i].first);
        line += "\n    Train net output #" + std::to_string(i) + ": " + outputs[i].first + " = " +
                fmt("%.6g", outputs[i].second) +
                (w != 0 ? " (* " + fmt("%g", w) + " = " + fmt("%.6g", w * outputs[i].second) + " loss)" : "");
      }
      note(line);
      std::string json = "{\"iter\":" + std::to_string(iter_) + ",\"lr\":" + json_num(lr) +
                         ",\"loss\":" + json_num(smoothed) + ",\"outputs\":{";
      for (size_t i = 0; i < outputs.size(); ++i) {
        if (i) json += ',';
        json += json_str(outputs[i].first) + ":" + json_num(outputs[i].second);
      }
      json += "},\"grad_norm\":" + json_num(grad_norm) + ",\"samples_per_s\":" + json_num(sps) +
              ",\"rss_mb\":" + json_num(rss_mb()) + ",\"elapsed_s\":" + json_num(elapsed) + "}";
      write_metrics(json);
      train_curve_.emplace_back(static_cast<double>(iter_), smoothed);
      last_display = Clock::now();
      last_display_iter = iter_ + 1;
    }
    ++iter_;
    if (!show) progress(smoothed);

    if (param_.snapshot() > 0 && iter_ % param_.snapshot() == 0) {
      snapshot();
      snapshot_iter = iter_;
    }
    if (g_snapshot.exchange(false) && snapshot_iter != iter_) {
      note("SIGHUP: snapshot, then training continues");
      snapshot();
      snapshot_iter = iter_;
    }
    if (g_stop.load()) {
      if (snapshot_iter != iter_) snapshot();
      message_ = "interrupted (SIGINT) at iteration " + std::to_string(iter_) + "; resume with --snapshot " +
                 last_snapshot_;
      note(message_);
      write_curve();
      return Outcome::interrupted;
    }
  }
  if (param_.snapshot_after_train() && snapshot_iter != iter_ && iter_ > start_iter) snapshot();
  if (param_.test_interval() > 0 && iter_ % param_.test_interval() == 0 && tested_at != iter_) test_all();
  write_curve();
  note("Optimization done at iteration " + std::to_string(iter_) + " (" + duration_str(seconds_since(start)) + ")");
  return Outcome::finished;
}

}  // namespace mmfuse
