// The Solver: loss falls, lr policy, iter_size accumulation, bit-exact resume, SIGINT/SIGHUP
// snapshots, NaN stop; weights (fine-tune table, npy round trip); SegmentationMetric and
// Accuracy. Nets are tiny (Scale + EuclideanLoss) fed by a test-only data layer whose batch is a
// pure function of ForwardContext::iteration.
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include "core/layer.h"
#include "core/npy.h"
#include "core/ops.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "core/solver.h"
#include "tests/gradcheck.h"

using namespace mmfuse;
namespace fs = std::filesystem;

namespace {

// Tops x, y [B, D] (input_param { shape { dim: B dim: D } }): sample s = iteration * B + r has
// x[d] = sin(0.7 s + 1.3 d + 0.1), y = x * (0.5 + 0.25 d) + 0.1 d.
class IterDataLayer : public Layer {
 public:
  using Layer::Layer;
  Layer::Arity arity() const override { return {0, 0, 2, 2}; }
  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext&) override {
    const auto& s = layer_param().input_param().shape(0);
    b_ = s.dim(0), d_ = s.dim(1);
    return {Shape{b_, d_}, Shape{b_, d_}};
  }
  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    std::vector<float> x, y;
    for (int64_t r = 0; r < b_; ++r)
      for (int64_t d = 0; d < d_; ++d) {
        double s = static_cast<double>(ctx.iteration * b_ + r);
        double v = std::sin(0.7 * s + 1.3 * static_cast<double>(d) + 0.1);
        x.push_back(static_cast<float>(v));
        y.push_back(static_cast<float>(v * (0.5 + 0.25 * static_cast<double>(d)) + 0.1 * static_cast<double>(d)));
      }
    return {Tensor::from_vector(x, {b_, d_}), Tensor::from_vector(y, {b_, d_})};
  }

 private:
  int64_t b_ = 1, d_ = 1;
};

// Passes its bottom through; at chosen train iterations raises a signal or emits NaN.
// g_nangrad_at: the value stays finite and the gradient through it is NaN (d sqrt(0 x) / dx).
int64_t g_sigint_at = -1, g_sighup_at = -1, g_nan_at = -1, g_nangrad_at = -1;
class TriggerLayer : public Layer {
 public:
  using Layer::Layer;
  std::vector<Shape> setup(const std::vector<Shape>& b, LayerContext&) override { return {b[0]}; }
  TensorList forward(const TensorList& b, ForwardContext& ctx) override {
    if (ctx.phase == proto::TRAIN) {
      if (ctx.iteration == g_sigint_at) std::raise(SIGINT);
      if (ctx.iteration == g_sighup_at) std::raise(SIGHUP);
      if (ctx.iteration == g_nan_at) return {b[0] * std::nan("")};
      if (ctx.iteration == g_nangrad_at) return {b[0] + pow(b[0] * 0.0, 0.5)};
    }
    return {b[0]};
  }
};

}  // namespace

MMF_REGISTER_LAYER(TestIterData, IterDataLayer)
MMF_REGISTER_LAYER(TestTrigger, TriggerLayer)

namespace {

struct TempDir {
  fs::path dir;
  explicit TempDir(const std::string& tag) {
    dir = fs::temp_directory_path() / ("mmfuse_test_solver_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

std::string net_text(int batch) {
  return "name: 'reg'\n"
         "layer { name: 'data' type: 'TestIterData' top: 'x' top: 'y' input_param { shape { dim: " +
         std::to_string(batch) +
         " dim: 3 } } }\n"
         "layer { name: 'trig' type: 'TestTrigger' bottom: 'x' top: 'xt' }\n"
         "layer { name: 'lin' type: 'Scale' bottom: 'xt' top: 'pred' scale_param { bias_term: true } }\n"
         "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'pred' bottom: 'y' top: 'loss' }\n";
}

proto::SolverParameter solver_param(const std::string& prefix, int max_iter, const std::string& extra = "",
                                    int batch = 4) {
  std::string text = "net_param { " + net_text(batch) + " }\n" + "base_lr: 0.1 momentum: 0.9 weight_decay: 0.001\n" +
                     "max_iter: " + std::to_string(max_iter) + "\nsnapshot_prefix: '" + prefix +
                     "'\nsolver_mode: CPU random_seed: 3\n" + extra;
  return read_solver_text(text, "<solver>");
}

SolverOptions quiet() {
  SolverOptions o;
  o.out = nullptr;
  return o;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

double json_value(const std::string& line, const std::string& key) {
  size_t p = line.find("\"" + key + "\":");
  REQUIRE(p != std::string::npos);
  return std::stod(line.substr(p + key.size() + 3));
}

std::vector<float> all_params(Solver& s) {
  std::vector<float> out;
  for (const Param& p : s.net().params())
    for (float v : p.value.to_vector<float>()) out.push_back(v);
  return out;
}

}  // namespace

TEST_CASE("solver: the loss falls on a small regression problem; metrics, tests and curve are written") {
  TempDir tmp("falls");
  auto p = solver_param(tmp.path("snap/reg"), 60, "display: 1 test_iter: 2 test_interval: 20");
  Solver s(p, "", quiet());
  CHECK(s.batch_size() == 4);
  CHECK(s.solve() == Solver::Outcome::finished);
  CHECK(s.iter() == 60);
  auto lines = lines_of(tmp.path("snap/reg_metrics.jsonl"));
  std::vector<std::string> train, test;
  for (const auto& l : lines) (l.find("\"phase\":\"test\"") != std::string::npos ? test : train).push_back(l);
  REQUIRE(train.size() == 60);
  CHECK(test.size() == 4);  // iterations 0, 20, 40, 60
  double first = json_value(train.front(), "loss"), last = json_value(train.back(), "loss");
  CHECK(last < 0.05 * first);
  CHECK(train.back().find("\"samples_per_s\":") != std::string::npos);
  CHECK(train.back().find("\"rss_mb\":") != std::string::npos);
  CHECK(json_value(test.back(), "loss") < json_value(test.front(), "loss"));
  CHECK(fs::exists(tmp.path("snap/reg_iter_60.weights")));
  CHECK(fs::exists(tmp.path("snap/reg_iter_60.solverstate")));
  // The curve: one chart of the losses (no other test output), as an SVG of its own.
  std::ifstream curve_file(tmp.path("snap/reg_curve.svg"));
  const std::string curve((std::istreambuf_iterator<char>(curve_file)), std::istreambuf_iterator<char>());
  CHECK(curve.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"600\"", 0) == 0);
  CHECK(curve.find(">train loss (smoothed)<") != std::string::npos);
  CHECK(curve.find(">test loss<") != std::string::npos);
  CHECK(curve.find(">iteration<") != std::string::npos);
}

TEST_CASE("solver: the lr policy sets each iteration's rate") {
  TempDir tmp("lr");
  auto p = solver_param(tmp.path("lr"), 5, "display: 1 lr_policy: 'step' gamma: 0.5 stepsize: 2 snapshot_after_train: false");
  Solver s(p, "", quiet());
  s.solve();
  auto lines = lines_of(tmp.path("lr_metrics.jsonl"));
  REQUIRE(lines.size() == 5);
  const double want[] = {0.1, 0.1, 0.05, 0.05, 0.025};
  for (int i = 0; i < 5; ++i) CHECK(json_value(lines[i], "lr") == doctest::Approx(want[i]));
  CHECK_FALSE(fs::exists(tmp.path("lr_iter_5.weights")));
}

TEST_CASE("solver: iter_size 2 equals one batch twice as large") {
  TempDir tmp("itersize");
  auto a = solver_param(tmp.path("a"), 6, "iter_size: 2", 2);
  auto b = solver_param(tmp.path("b"), 6, "", 4);
  Solver sa(a, "", quiet()), sb(b, "", quiet());
  sa.solve();
  sb.solve();
  auto wa = all_params(sa), wb = all_params(sb);
  REQUIRE(wa.size() == wb.size());
  for (size_t i = 0; i < wa.size(); ++i) CHECK(wa[i] == doctest::Approx(wb[i]).epsilon(1e-5));
  CHECK(wa != all_params(*std::make_unique<Solver>(a, "", quiet())));  // training moved the weights
}

TEST_CASE("solver: N straight and N/2 + resume + N/2 give bit-identical weights") {
  for (std::string type : {"SGD", "Adam", "RMSProp", "AdaDelta"}) {
    CAPTURE(type);
    TempDir tmp("resume" + type);
    std::string extra = "type: '" + type + "' lr_policy: 'step' gamma: 0.5 stepsize: 3 average_loss: 3 display: 1";
    // RMSProp takes no momentum (Caffe's rule); AdaDelta decays by it.
    auto param = [&](const std::string& prefix) {
      proto::SolverParameter p = solver_param(prefix, 8, extra);
      if (type == "RMSProp") p.set_momentum(0);
      return p;
    };
    Solver straight(param(tmp.path("s")), "", quiet());
    straight.solve();
    SolverOptions half = quiet();
    half.max_iter = 4;
    Solver first(param(tmp.path("h")), "", half);
    first.solve();
    REQUIRE(fs::exists(tmp.path("h_iter_4.solverstate")));
    Solver second(param(tmp.path("h")), "", quiet());
    second.restore(tmp.path("h_iter_4.solverstate"));
    CHECK(second.iter() == 4);
    second.solve();
    auto a = all_params(straight), b = all_params(second);
    REQUIRE(a.size() == b.size());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    CHECK(straight.smoothed_loss() == second.smoothed_loss());
  }
}

TEST_CASE("solver: SIGINT snapshots and stops; SIGHUP snapshots and continues") {
  TempDir tmp("signals");
  {
    g_sigint_at = 4;
    Solver s(solver_param(tmp.path("int"), 20), "", quiet());
    auto outcome = s.solve();
    g_sigint_at = -1;
    CHECK(outcome == Solver::Outcome::interrupted);
    CHECK(s.iter() == 5);
    CHECK(fs::exists(tmp.path("int_iter_5.weights")));
    CHECK(fs::exists(tmp.path("int_iter_5.solverstate")));
    CHECK(s.message().find("resume with --snapshot") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp.path("int_iter_20.weights")));
  }
  {
    g_sighup_at = 2;
    Solver s(solver_param(tmp.path("hup"), 6), "", quiet());
    auto outcome = s.solve();
    g_sighup_at = -1;
    CHECK(outcome == Solver::Outcome::finished);
    CHECK(fs::exists(tmp.path("hup_iter_3.solverstate")));
    CHECK(fs::exists(tmp.path("hup_iter_6.solverstate")));
  }
}

TEST_CASE("solver: a NaN loss stops training, names the iteration and output, keeps the last snapshot") {
  TempDir tmp("nan");
  g_nan_at = 5;
  Solver s(solver_param(tmp.path("nan"), 20, "snapshot: 2"), "", quiet());
  auto outcome = s.solve();
  g_nan_at = -1;
  CHECK(outcome == Solver::Outcome::diverged);
  CHECK(s.message().find("iteration 5") != std::string::npos);
  CHECK(s.message().find("'loss'") != std::string::npos);
  CHECK(s.message().find("NaN") != std::string::npos);
  CHECK(fs::exists(tmp.path("nan_iter_4.weights")));
  CHECK_FALSE(fs::exists(tmp.path("nan_iter_5.weights")));
  CHECK_FALSE(fs::exists(tmp.path("nan_iter_6.weights")));
  CHECK_FALSE(fs::exists(tmp.path("nan_iter_20.weights")));
  // The last good snapshot holds finite weights and resumes.
  proto::NetWeights good = read_weights(tmp.path("nan_iter_4.weights"));
  for (const auto& b : good.param())
    for (float v : b.data()) CHECK(std::isfinite(v));
  Solver r(solver_param(tmp.path("nan"), 6), "", quiet());
  r.restore(tmp.path("nan_iter_4.solverstate"));
  CHECK(r.solve() == Solver::Outcome::finished);
}

TEST_CASE("weights: fine-tune copy reports loaded, missing, mismatched and unused parameters") {
  Net net(read_net_text(net_text(4)), proto::TRAIN);
  proto::NetWeights w;
  auto add = [&](const std::string& name, std::vector<float> v, Shape s) {
    proto::BlobProto* b = w.add_param();
    b->set_name(name);
    tensor_to_blob(Tensor::from_vector(v, s), *b);
  };
  add("lin.gamma", {2, 3, 4}, {3});
  add("lin.beta", {1, 2}, {2});
  add("other.w", {1}, {1});
  CopyReport r = copy_weights(net, w);
  CHECK(r.loaded == std::vector<std::string>{"lin.gamma"});
  CHECK(r.missing.empty());
  REQUIRE(r.mismatched.size() == 1);
  CHECK(r.mismatched[0] == "lin.beta: net [3] vs file [2]");
  CHECK(r.unused == std::vector<std::string>{"other.w"});
  CHECK(net.layer("lin")->param(0).to_vector<float>() == std::vector<float>{2, 3, 4});
  CHECK(net.layer("lin")->param(1).to_vector<float>() == std::vector<float>{0, 0, 0});
  std::string t = r.table();
  CHECK(t.find("lin.gamma") != std::string::npos);
  CHECK(t.find("shape mismatch") != std::string::npos);
  CHECK(t.find("1 loaded, 0 missing, 1 shape-mismatched, 1 unused") != std::string::npos);
  CHECK_THROWS_AS(copy_weights(net, w, /*strict=*/true), IOError);
  proto::NetWeights partial;
  *partial.add_param() = w.param(0);
  CopyReport r2 = copy_weights(net, partial);
  CHECK(r2.missing == std::vector<std::string>{"lin.beta"});
}

TEST_CASE("weights: .weights -> npy -> .weights round trip") {
  TempDir tmp("npy");
  Net net(read_net_text(net_text(4)), proto::TRAIN);
  net.layer("lin")->param(0).copy_(Tensor::from_vector<float>({0.5f, -1.25f, 3.f}, {3}));
  save_weights(net, tmp.path("w.weights"));
  export_npy(read_weights(tmp.path("w.weights")), tmp.path("npy"));
  CHECK(fs::exists(tmp.path("npy/lin.gamma.npy")));
  CHECK(load_npy(tmp.path("npy/lin.gamma.npy")).to_vector<float>() == std::vector<float>{0.5f, -1.25f, 3.f});
  proto::NetWeights back = import_npy(net, tmp.path("npy"));
  CHECK(back.SerializeAsString() == read_weights(tmp.path("w.weights")).SerializeAsString());
  save_npy(tmp.path("npy/lin.beta.npy"), Tensor::zeros({4}));
  fs::remove(tmp.path("npy/lin.gamma.npy"));
  try {
    import_npy(net, tmp.path("npy"));
    FAIL("expected IOError");
  } catch (const IOError& e) {
    std::string m = e.what();
    CHECK(m.find("lin.gamma.npy: missing") != std::string::npos);
    CHECK(m.find("lin.beta.npy: shape [4], the net's lin.beta is [3]") != std::string::npos);
  }
}

TEST_CASE("SegmentationMetric: confusion counts per modality; metrics from a hand-made matrix") {
  const char* text =
      "layer { name: 'in' type: 'Input' top: 'logits' top: 'label' input_param { shape { dim: 2 dim: 3 dim: 1 dim: 3 }"
      " shape { dim: 1 dim: 1 dim: 3 } } }\n"
      "layer { name: 'seg' type: 'SegmentationMetric' bottom: 'logits' bottom: 'label' top: 'conf'"
      " segmentation_metric_param { num_classes: 3 ignore_label: 255 modalities: 2 } }\n";
  Net net(read_net_text(text), proto::TEST);
  // Modality 0 predicts classes (2, 0, 1) at the 3 pixels, modality 1 (1, 1, 0); labels (2, 1, 255).
  std::vector<float> logits = {0, 1, 0, /*class0*/ 0, 0, 2, /*class1*/ 3, 0, 0,  // modality 0 [K, 1, 3]
                               0, 0, 5, 1, 1, 0, 0, 0, 0};                        // modality 1
  auto blobs = net.forward({{"logits", Tensor::from_vector(logits, {2, 3, 1, 3})},
                            {"label", Tensor::from_vector<int32_t>({2, 1, 255}, {1, 1, 3})}});
  std::vector<float> c = blobs.at("conf").to_vector<float>();
  REQUIRE(c.size() == 18);
  std::vector<float> want(18, 0.f);
  want[2 * 3 + 2] = 1;      // m0: gt 2 -> pred 2
  want[1 * 3 + 0] = 1;      // m0: gt 1 -> pred 0
  want[9 + 2 * 3 + 1] = 1;  // m1: gt 2 -> pred 1
  want[9 + 1 * 3 + 1] = 1;  // m1: gt 1 -> pred 1
  CHECK(c == want);
  CHECK_THROWS_AS(Net(read_net_text(
                          "layer { name: 'in' type: 'Input' top: 'a' top: 'b' input_param { shape { dim: 2 dim: 3 dim:"
                          " 4 dim: 4 } shape { dim: 2 dim: 4 dim: 5 } } }\n"
                          "layer { name: 's' type: 'SegmentationMetric' bottom: 'a' bottom: 'b' top: 'c' }"),
                      proto::TEST),
                  ParseError);

  SegmentationScores s = segmentation_scores({3, 1, 0, 0, 2, 2, 1, 0, 1}, 3);
  CHECK(s.pixel_accuracy == doctest::Approx(60.0));
  CHECK(s.mean_accuracy == doctest::Approx(100.0 * (0.75 + 0.5 + 0.5) / 3));
  CHECK(s.mean_iou == doctest::Approx(100.0 * (0.6 + 0.4 + 0.25) / 3));
  CHECK(s.class_iou == std::vector<double>{60.0, 40.0, 25.0});
  CHECK(s.class_accuracy == std::vector<double>{75.0, 50.0, 50.0});
  // A class absent from ground truth and prediction has no IoU and no accuracy.
  SegmentationScores absent = segmentation_scores({2, 0, 0, 0}, 2);
  CHECK(absent.mean_iou == doctest::Approx(100.0));
  CHECK(std::isnan(absent.class_iou[1]));
  CHECK(std::isnan(absent.class_accuracy[1]));
  TestResult r;
  s.name = "branch 0";
  r.segmentation = {s};
  CHECK(r.format_per_class().find("          1  40.00  50.00") != std::string::npos);
  // Row 2 (gt 2): 1 of 2 predicted as 0, 1 as 2.
  CHECK(r.format_confusion().find("      2   50.0   0.0  50.0") != std::string::npos);
}

TEST_CASE("Accuracy: top_k, ignore_label and modalities") {
  auto run = [](const std::string& param, const Tensor& x, const Tensor& label) {
    std::string shape_x, shape_l;
    for (int64_t d : x.shape()) shape_x += " dim: " + std::to_string(d);
    for (int64_t d : label.shape()) shape_l += " dim: " + std::to_string(d);
    std::string text = "layer { name: 'in' type: 'Input' top: 'x' top: 'l' input_param { shape {" + shape_x +
                       " } shape {" + shape_l + " } } }\n"
                       "layer { name: 'acc' type: 'Accuracy' bottom: 'x' bottom: 'l' top: 'a' accuracy_param { " +
                       param + " } }\n";
    Net net(read_net_text(text), proto::TEST);
    return net.forward({{"x", x}, {"l", label}}).at("a").item();
  };
  // Rows: best classes 0, 2, 1 (second best 1, 1, 3).
  Tensor x = Tensor::from_vector<float>({5, 4, 0, 0, /**/ 0, 3, 4, 0, /**/ 1, 9, 0, 2}, {3, 4});
  Tensor l = Tensor::from_vector<float>({0, 1, 3}, {3});
  CHECK(run("top_k: 1", x, l) == doctest::Approx(1.0 / 3));
  CHECK(run("top_k: 2", x, l) == doctest::Approx(1.0));
  CHECK(run("top_k: 1 ignore_label: 1", x, l) == doctest::Approx(1.0 / 2));
  // Ties count against the true class.
  CHECK(run("top_k: 1", Tensor::from_vector<float>({1, 1}, {1, 2}), Tensor::from_vector<float>({1}, {1})) == 0.0);
  // Two modalities [2*2, 3] against one label [2]: m0 right twice, m1 right once.
  Tensor xm = Tensor::from_vector<float>({1, 0, 0, 0, 1, 0, /**/ 1, 0, 0, 0, 0, 1}, {4, 3});
  CHECK(run("modalities: 2", xm, Tensor::from_vector<int32_t>({0, 1}, {2})) == doctest::Approx(0.75));
  CHECK_THROWS_AS(run("top_k: 5", x, l), ParseError);
}

TEST_CASE("evaluate: averages outputs over batches and sums segmentation counts") {
  TempDir tmp("eval");
  Net net(read_net_text(net_text(2)), proto::TEST);
  TestResult r = evaluate(net, 3);
  REQUIRE(r.outputs.size() == 1);
  CHECK(r.outputs[0].first == "loss");
  double sum = 0;
  for (int it = 0; it < 3; ++it) sum += net.forward({}, it).at("loss").item();
  CHECK(r.outputs[0].second == doctest::Approx(sum / 3));
  CHECK(r.format().find("output #0: loss = ") != std::string::npos);
}

namespace {
// The regression net with a second trigger after the learned layer (its NaN gradient reaches
// the parameters).
proto::SolverParameter late_trigger_solver(const std::string& prefix, int max_iter, const std::string& extra) {
  std::string net = net_text(4);
  net.replace(net.find("layer { name: 'loss'"), 0, "layer { name: 'trig2' type: 'TestTrigger' bottom: 'pred' top: 'pred2' }\n");
  net.replace(net.find("bottom: 'pred' bottom: 'y'"), 26, "bottom: 'pred2' bottom: 'y'");
  return read_solver_text("net_param { " + net + " }\nbase_lr: 0.1 momentum: 0.9 max_iter: " +
                              std::to_string(max_iter) + "\nsnapshot_prefix: '" + prefix +
                              "'\nsolver_mode: CPU random_seed: 3\n" + extra,
                          "<solver>");
}
}  // namespace

TEST_CASE("solver: a snapshot is written only from weights that gave a finite loss and finite gradients") {
  TempDir tmp("verified");
  SUBCASE("NaN loss on the weights of a due snapshot: that snapshot is not written") {
    g_nan_at = 4;
    Solver s(solver_param(tmp.path("a"), 20, "snapshot: 2"), "", quiet());
    auto outcome = s.solve();
    g_nan_at = -1;
    CHECK(outcome == Solver::Outcome::diverged);
    CHECK(fs::exists(tmp.path("a_iter_2.solverstate")));
    CHECK_FALSE(fs::exists(tmp.path("a_iter_4.weights")));
    CHECK_FALSE(fs::exists(tmp.path("a_iter_4.solverstate")));
    CHECK(s.message().find("the last good one is " + tmp.path("a_iter_2.solverstate")) != std::string::npos);
  }
  SUBCASE("NaN gradients with a finite loss stop training too") {
    g_nangrad_at = 3;
    Solver s(late_trigger_solver(tmp.path("b"), 20, "snapshot: 3"), "", quiet());
    auto outcome = s.solve();
    g_nangrad_at = -1;
    CHECK(outcome == Solver::Outcome::diverged);
    CHECK(s.message().find("iteration 3: the gradients are NaN") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp.path("b_iter_3.weights")));
    CHECK(s.message().find("none was written") != std::string::npos);
  }
  SUBCASE("the end-of-run snapshot is checked by one more forward and backward") {
    g_nan_at = 6;
    Solver s(solver_param(tmp.path("c"), 6, "snapshot: 2"), "", quiet());
    auto outcome = s.solve();
    g_nan_at = -1;
    CHECK(outcome == Solver::Outcome::diverged);
    CHECK(fs::exists(tmp.path("c_iter_4.weights")));
    CHECK_FALSE(fs::exists(tmp.path("c_iter_6.weights")));
    CHECK(s.message().find("on the weights of iteration 6") != std::string::npos);
  }
  SUBCASE("the checking forward leaves no trace: generator and parameters are put back") {
    Solver s(solver_param(tmp.path("d"), 5, "snapshot: 5"), "", quiet());
    CHECK(s.solve() == Solver::Outcome::finished);
    proto::NetWeights w = read_weights(tmp.path("d_iter_5.weights"));
    std::vector<float> file;
    for (const auto& b : w.param()) file.insert(file.end(), b.data().begin(), b.data().end());
    CHECK(file == all_params(s));
  }
}

TEST_CASE("solver: resume after a crash leaves one metrics record per iteration") {
  TempDir tmp("dedupe");
  std::string extra = "display: 1 test_iter: 1 test_interval: 2 snapshot: 4 snapshot_after_train: false";
  SolverOptions crash = quiet();
  crash.max_iter = 7;  // "killed" after iteration 6, the last snapshot at 4
  Solver first(solver_param(tmp.path("m"), 10, extra), "", crash);
  first.solve();
  REQUIRE(fs::exists(tmp.path("m_iter_4.solverstate")));
  Solver second(solver_param(tmp.path("m"), 10, extra), "", quiet());
  second.restore(tmp.path("m_iter_4.solverstate"));
  second.solve();
  std::map<std::string, int> seen;
  for (const auto& l : lines_of(tmp.path("m_metrics.jsonl"))) {
    std::string key = (l.find("\"phase\":\"test\"") != std::string::npos ? "test " : "train ") +
                      std::to_string(static_cast<int>(json_value(l, "iter")));
    ++seen[key];
  }
  for (int i = 0; i < 10; ++i) CHECK(seen["train " + std::to_string(i)] == 1);
  for (int i = 0; i <= 10; i += 2) CHECK(seen["test " + std::to_string(i)] == 1);
  CHECK(seen.size() == 16);
  // The training curve after the resume holds the earlier iterations too, once each.
  REQUIRE(second.train_curve().size() == 10);
  for (int i = 0; i < 10; ++i) CHECK(second.train_curve()[i].first == i);
}

TEST_CASE("solver: every field of a solver state is checked before it is used") {
  TempDir tmp("state");
  Solver sgd(solver_param(tmp.path("s"), 2, "snapshot: 2"), "", quiet());
  REQUIRE(sgd.solve() == Solver::Outcome::finished);
  std::string state_path = tmp.path("s_iter_2.solverstate");
  proto::SolverState st;
  read_binary(state_path, st);
  auto refused = [&](const proto::SolverState& bad, const std::string& solver_extra) {
    std::string path = tmp.path("bad.solverstate");
    write_binary_atomic(path, bad);
    Solver r(solver_param(tmp.path("r"), 4, solver_extra), "", quiet());
    std::string msg;
    try {
      r.restore(path);
    } catch (const IOError& e) {
      msg = e.what();
    }
    CHECK(r.iter() == 0);
    CHECK(msg.find(path) != std::string::npos);
    return msg;
  };
  proto::SolverState negative = st;
  negative.set_iter(-7);
  CHECK(refused(negative, "").find("iteration -7 is negative") != std::string::npos);
  CHECK(refused(st, "type: 'Adam'").find("written by a SGD solver; this solver is Adam") != std::string::npos);
  proto::SolverState untyped = st;  // an older state: SGD history given to Adam misses moments
  untyped.clear_type();
  CHECK(refused(untyped, "type: 'Adam'").find("no history") != std::string::npos);
  proto::SolverState binary_path = st;
  binary_path.set_learned_net(std::string("\x0a\x03" "abc", 5));
  CHECK(refused(binary_path, "").find("not text") != std::string::npos);
  // A .weights file given as a solver state.
  std::string msg;
  try {
    Solver r(solver_param(tmp.path("r"), 4), "", quiet());
    r.restore(tmp.path("s_iter_2.weights"));
  } catch (const IOError& e) {
    msg = e.what();
  }
  INFO(msg);
  CHECK(msg.find("s_iter_2.weights") != std::string::npos);
  CHECK(msg.find("not a binary SolverState") != std::string::npos);
}

TEST_CASE("solver: settings are refused, naming the file and the field, before any output is touched") {
  TempDir tmp("settings");
  std::string solver_file = tmp.path("solver.prototxt");
  auto refused = [&](const std::string& extra, float base_lr = 0.1f) {
    // A previous run's outputs under the same prefix must stay as they were.
    std::ofstream(tmp.path("o_metrics.jsonl")) << "{\"iter\":0}\n";
    std::string msg;
    try {
      proto::SolverParameter p = solver_param(tmp.path("o"), 4, extra);
      p.set_base_lr(base_lr);
      Solver s(p, solver_file, quiet());
      s.solve();
    } catch (const Error& e) {
      msg = e.what();
    }
    CHECK(lines_of(tmp.path("o_metrics.jsonl")) == std::vector<std::string>{"{\"iter\":0}"});
    CHECK(msg.rfind(solver_file + ": ", 0) == 0);
    INFO(msg);
    return msg;
  };
  CHECK(refused("", -0.1f).find("base_lr must be >= 0") != std::string::npos);
  CHECK(refused("lr_policy: 'multistep' stepvalue: 3 stepvalue: 2").find("stepvalue must ascend") != std::string::npos);
  CHECK(refused("train_net: 'x.prototxt'").find("more than one train net") != std::string::npos);
  CHECK(refused("test_iter: -2 test_interval: 2").find("test_iter must be > 0, got -2") != std::string::npos);
  CHECK(refused("lr_policy: 'bogus'").find("unknown lr_policy 'bogus'") != std::string::npos);
  CHECK(refused("type: 'Adagrad2'").find("unknown solver type") != std::string::npos);
  CHECK(refused("display: 1 lr_policy: 'step'").find("stepsize") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp.path("o_curve.svg")));
}
