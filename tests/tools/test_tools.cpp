// The train/test/time/forward/export-weights/import-weights/make-dataset commands, run as the mmfuse binary
// next to this test executable (both are built into the same folder).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/layer.h"
#include "core/npy.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "datasets/image.h"
#include "datasets/scenes.h"
#include "tests/gradcheck.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
namespace fs = std::filesystem;

namespace {

struct Tmp {
  fs::path dir;
  Tmp() {
    dir = fs::temp_directory_path() / ("mmfuse_test_tools_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Tmp() { fs::remove_all(dir); }
  std::string path(const std::string& n) const { return (dir / n).string(); }
  void write(const std::string& n, const std::string& text) const { std::ofstream(path(n)) << text; }
};

std::string binary() { return mmfuse::testing::mmfuse_binary().string(); }

// Runs `mmfuse args` in the test's folder, returns the exit code; stdout+stderr in `out`.
int run(const std::string& args, std::string& out, const Tmp& tmp) { return mmfuse::testing::run_mmfuse(tmp.dir, args, out); }

const char* kNet =
    "name: 'tiny'\n"
    "layer { name: 'in' type: 'Input' top: 'x' top: 'y' input_param { shape { dim: 2 dim: 3 } } }\n"
    "layer { name: 'lin' type: 'Scale' bottom: 'x' top: 'pred' scale_param { bias_term: true"
    " filler { type: 'constant' value: 2 } } }\n"
    "layer { name: 'act' type: 'ReLU' bottom: 'pred' top: 'pred' }\n"
    "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'pred' bottom: 'y' top: 'loss' }\n";

}  // namespace

TEST_CASE("tools: time, forward (with --backward), export/import-weights, errors") {
  if (!fs::exists(binary())) {
    MESSAGE("skipped: no mmfuse binary next to the tests (" << binary() << ")");
    return;
  }
  Tmp tmp;
  tmp.write("net.prototxt", kNet);
  std::string out;

  SUBCASE("time prints per-layer and whole-iteration times") {
    REQUIRE(run("time --model net.prototxt --iterations 3", out, tmp) == 0);
    INFO(out);
    CHECK(out.find("lin") != std::string::npos);
    CHECK(out.find("EuclideanLoss") != std::string::npos);
    CHECK(out.find("backward ms") != std::string::npos);
    CHECK(out.find("Whole iteration (forward + backward + update): mean") != std::string::npos);
    // bench/vs_pytorch.py reads these two lines for its optimizer (+ unattributed) row.
    CHECK(out.find("Outside the layers (autograd engine, gradient sums, zero_grad; the same iterations): mean ") !=
          std::string::npos);
    CHECK(out.find("of which the update (SGD step): mean ") != std::string::npos);
  }

  SUBCASE("forward dumps blobs and gradients") {
    save_npy(tmp.path("x.npy"), Tensor::from_vector<float>({1, -2, 3, 0.5f, 1, -1}, {2, 3}));
    save_npy(tmp.path("y.npy"), Tensor::from_vector<float>({1, 1, 1, 0, 0, 0}, {2, 3}));
    REQUIRE(run("forward --model net.prototxt --input x=x.npy --input y=y.npy --dump out --backward --phase train", out,
                tmp) == 0);
    INFO(out);
    auto pred = load_npy(tmp.path("out/pred.npy")).to_vector<float>();
    CHECK(pred == std::vector<float>{2, 0, 6, 1, 2, 0});  // relu(2x)
    // loss = sum((pred - y)^2) / (2 N), N = 2: d loss / d pred = (pred - y) / 2
    auto gp = load_npy(tmp.path("out/pred.grad.npy")).to_vector<float>();
    std::vector<float> want = {0.5f, -0.5f, 2.5f, 0.5f, 1.f, 0.f};
    REQUIRE(gp.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) CHECK(gp[i] == doctest::Approx(want[i]));
    // d/dx = d/dpred * relu'(2x) * gamma(2)
    auto gx = load_npy(tmp.path("out/x.grad.npy")).to_vector<float>();
    std::vector<float> wx = {1.f, 0.f, 5.f, 1.f, 2.f, 0.f};
    for (size_t i = 0; i < wx.size(); ++i) CHECK(gx[i] == doctest::Approx(wx[i]));
    CHECK(fs::exists(tmp.path("out/lin.gamma.grad.npy")));
    CHECK(fs::exists(tmp.path("out/lin.beta.grad.npy")));
    CHECK(load_npy(tmp.path("out/loss.npy")).item() == doctest::Approx((1 + 1 + 25 + 1 + 4 + 0) / 4.0));
  }

  SUBCASE("export-weights and import-weights round trip through the binary") {
    Net net(read_net(tmp.path("net.prototxt")), proto::TRAIN);
    save_weights(net, tmp.path("w.weights"));
    REQUIRE(run("export-weights w.weights npy", out, tmp) == 0);
    CHECK(load_npy(tmp.path("npy/lin.gamma.npy")).to_vector<float>() == std::vector<float>{2, 2, 2});
    save_npy(tmp.path("npy/lin.gamma.npy"), Tensor::from_vector<float>({1, 2, 3}, {3}));
    REQUIRE(run("import-weights --model net.prototxt npy w2.weights", out, tmp) == 0);
    proto::NetWeights w2 = read_weights(tmp.path("w2.weights"));
    REQUIRE(w2.param_size() == 2);
    CHECK(w2.param(0).name() == "lin.gamma");
    CHECK(w2.param(0).data(2) == 3.f);
  }

  SUBCASE("errors are one line with a non-zero exit; unknown flags name the command") {
    CHECK(run("time --model net.prototxt --bogus 1", out, tmp) != 0);
    CHECK(out.find("unknown flag --bogus") != std::string::npos);
    CHECK(run("train", out, tmp) != 0);
    CHECK(out.find("--solver S is required") != std::string::npos);
    CHECK(run("forward --model missing.prototxt --dump d", out, tmp) != 0);
    CHECK(out.find("missing.prototxt") != std::string::npos);
    CHECK(run("help train", out, tmp) == 0);
    CHECK(out.find("--snapshot S") != std::string::npos);
  }

  SUBCASE("train and test from the command line, with a resume") {
    std::string solver = std::string("net_param { ") + kNet +
                         " }\n"
                         "base_lr: 0.01 max_iter: 4 display: 2 snapshot_prefix: 'snap/tiny' solver_mode: CPU\n";
    tmp.write("solver.prototxt", solver);
    // Input layers need data: the tiny net is fed nothing, so training fails with a clear line.
    int rc = run("train --solver solver.prototxt", out, tmp);
    CHECK(rc != 0);
    CHECK(out.find("no tensor given for input 'x'") != std::string::npos);
    // Caffe's solver field `weights` is loaded at the start, as --weights (which replaces it).
    tmp.write("solver_w.prototxt", solver + "weights: 'absent.weights'\n");
    CHECK(run("train --solver solver_w.prototxt", out, tmp) != 0);
    CHECK(out.find("absent.weights") != std::string::npos);
  }
}

// ---- forward for checking against a reference: float64, upstream gradients, in-place stages ----

namespace {

std::vector<double> values(const std::string& path) { return load_npy(path).to_vector<double>(); }

// Writes `net_text` and a float32 weights file for it holding the given values per parameter.
void write_net_and_weights(const Tmp& tmp, const std::string& name, const std::string& net_text,
                           const std::map<std::string, std::vector<float>>& params) {
  tmp.write(name + ".prototxt", net_text);
  Net net(read_net(tmp.path(name + ".prototxt")), proto::TRAIN);
  autograd::NoGradGuard no_grad;
  for (const Param& p : net.params())
    if (params.count(p.name)) p.value.copy_(Tensor::from_vector<float>(params.at(p.name), p.value.shape()));
  save_weights(net, tmp.path(name + ".weights"));
}

// y = x W^T + b on the main branch; z on a side branch that only a loss reads.
const char* kTwoBranches =
    "name: 'two'\n"
    "layer { name: 'in' type: 'Input' top: 'x' top: 't' input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 2 } } }\n"
    "layer { name: 'fc' type: 'InnerProduct' bottom: 'x' top: 'y' inner_product_param { num_output: 2 } }\n"
    "layer { name: 'side' type: 'InnerProduct' bottom: 'x' top: 'z' inner_product_param { num_output: 2 } }\n"
    "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'z' bottom: 't' top: 'loss' }\n";
const std::vector<float> kW = {0.5f, -1.25f, 2, 1, 0.25f, -3}, kB = {0.125f, -1};             // fc: [2, 3], [2]
const std::vector<float> kSideW = {1, 0, -0.5f, 0.75f, 2, 1}, kSideB = {0, 0.5f};           // side
const std::vector<double> kX = {0.1, 1.0 / 3, -0.7, 2.2, 1e-3, 5.0 / 7};                   // [2, 3]
const std::vector<double> kT = {0.3, -0.2, 1.1, 0.6};                                       // [2, 2]
const std::vector<double> kG = {1.5, -0.25, 0.1, 2};                                        // dL/dy, [2, 2]

// x W^T + b in double, for [2, 3] x and [2, 3] W.
std::vector<double> linear_by_hand(const std::vector<double>& x, const std::vector<float>& w, const std::vector<float>& b) {
  std::vector<double> y(4);
  for (int n = 0; n < 2; ++n)
    for (int o = 0; o < 2; ++o) {
      y[n * 2 + o] = b[o];
      for (int k = 0; k < 3; ++k) y[n * 2 + o] += x[n * 3 + k] * static_cast<double>(w[o * 3 + k]);
    }
  return y;
}
// g W for [2, 2] g and [2, 3] W: the input gradient of InnerProduct.
std::vector<double> input_grad_by_hand(const std::vector<double>& g, const std::vector<float>& w) {
  std::vector<double> dx(6, 0.0);
  for (int n = 0; n < 2; ++n)
    for (int k = 0; k < 3; ++k)
      for (int o = 0; o < 2; ++o) dx[n * 3 + k] += g[n * 2 + o] * static_cast<double>(w[o * 3 + k]);
  return dx;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tolerance) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i << ": " << got[i] << " vs " << want[i]);
    CHECK(std::abs(got[i] - want[i]) <= tolerance);
  }
}

bool all_zero(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return x == 0; });
}

size_t count_of(const std::string& text, const std::string& word) {
  size_t n = 0;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

// two.prototxt with two.weights, and its inputs x.npy and t.npy in float64.
void write_two_branches(const Tmp& tmp) {
  write_net_and_weights(tmp, "two", kTwoBranches, {{"fc.weight", kW}, {"fc.bias", kB}, {"side.weight", kSideW},
                                                   {"side.bias", kSideB}});
  save_npy(tmp.path("x.npy"), Tensor::from_vector<double>(kX, {2, 3}));
  save_npy(tmp.path("t.npy"), Tensor::from_vector<double>(kT, {2, 2}));
}

}  // namespace

TEST_CASE("tools: forward --dtype float64 matches a hand computation; float32 does not; a float64 file is noted") {
  if (!fs::exists(binary())) return;
  Tmp tmp;
  write_two_branches(tmp);
  std::string out;
  const std::string common = "forward --model two.prototxt --weights two.weights --input x=x.npy --input t=t.npy ";
  std::vector<double> want = linear_by_hand(kX, kW, kB);

  REQUIRE(run(common + "--dtype float64 --dump d64", out, tmp) == 0);
  INFO(out);
  CHECK(out.find("note") == std::string::npos);  // nothing is cast
  Tensor y64 = load_npy(tmp.path("d64/y.npy"));
  CHECK(y64.dtype() == DType::f64);
  check_close(y64.to_vector<double>(), want, 1e-12);  // the float32 weights file, converted exactly

  REQUIRE(run(common + "--dump d32", out, tmp) == 0);
  Tensor y32 = load_npy(tmp.path("d32/y.npy"));
  CHECK(y32.dtype() == DType::f32);
  check_close(y32.to_vector<double>(), want, 1e-5);
  double largest = 0;
  for (size_t i = 0; i < want.size(); ++i) largest = std::max(largest, std::abs(y32.to_vector<double>()[i] - want[i]));
  CHECK(largest > 1e-9);  // float32 rounding shows: the double run is a different computation
  // Two float64 files, one note naming both and the way out.
  CHECK(count_of(out, "note:") == 1);
  CHECK(out.find("--input x=x.npy") != std::string::npos);
  CHECK(out.find("--input t=t.npy") != std::string::npos);
  CHECK(out.find("cast to float32") != std::string::npos);
  CHECK(out.find("--dtype float64") != std::string::npos);
}

TEST_CASE("tools: forward --grad gives the analytic gradients, zeros for an unreached branch, the loss with --backward") {
  if (!fs::exists(binary())) return;
  Tmp tmp;
  write_two_branches(tmp);
  save_npy(tmp.path("g.npy"), Tensor::from_vector<double>(kG, {2, 2}));
  std::string out;
  const std::string common =
      "forward --model two.prototxt --weights two.weights --dtype float64 --input x=x.npy --input t=t.npy --grad y=g.npy ";

  SUBCASE("--grad alone: only y's gradient flows") {
    REQUIRE(run(common + "--dump d", out, tmp) == 0);
    INFO(out);
    check_close(values(tmp.path("d/y.grad.npy")), kG, 0);
    check_close(values(tmp.path("d/x.grad.npy")), input_grad_by_hand(kG, kW), 1e-12);  // dx = g W
    std::vector<double> dw(6, 0.0);  // dW = g^T x
    for (int o = 0; o < 2; ++o)
      for (int k = 0; k < 3; ++k)
        for (int n = 0; n < 2; ++n) dw[o * 3 + k] += kG[n * 2 + o] * kX[n * 3 + k];
    check_close(values(tmp.path("d/fc.weight.grad.npy")), dw, 1e-12);
    check_close(values(tmp.path("d/fc.bias.grad.npy")), {kG[0] + kG[2], kG[1] + kG[3]}, 1e-12);
    CHECK(load_npy(tmp.path("d/x.grad.npy")).dtype() == DType::f64);
    // The side branch and the loss are never reached: files of zeros of the right shape.
    for (const char* name : {"z", "t", "loss", "side.weight", "side.bias"}) {
      INFO(name);
      REQUIRE(fs::exists(tmp.path(std::string("d/") + name + ".grad.npy")));
      Tensor g = load_npy(tmp.path(std::string("d/") + name + ".grad.npy"));
      CHECK(all_zero(g.to_vector<double>()));
    }
    CHECK(load_npy(tmp.path("d/z.grad.npy")).shape() == Shape{2, 2});
    CHECK(load_npy(tmp.path("d/side.weight.grad.npy")).shape() == Shape{2, 3});
    CHECK(out.find("9 gradients (5 never reached") != std::string::npos);
  }

  SUBCASE("--grad with --backward: the seed is <y, g> plus the loss") {
    REQUIRE(run(common + "--backward --dump d", out, tmp) == 0);
    INFO(out);
    // EuclideanLoss = sum((z - t)^2) / (2 N), N = 2: dL/dz = (z - t) / 2.
    std::vector<double> z = linear_by_hand(kX, kSideW, kSideB), dz(4);
    for (size_t i = 0; i < 4; ++i) dz[i] = (z[i] - kT[i]) / 2;
    check_close(values(tmp.path("d/z.grad.npy")), dz, 1e-12);
    check_close(values(tmp.path("d/y.grad.npy")), kG, 0);
    std::vector<double> dx = input_grad_by_hand(kG, kW), dx_side = input_grad_by_hand(dz, kSideW);
    for (size_t i = 0; i < dx.size(); ++i) dx[i] += dx_side[i];
    check_close(values(tmp.path("d/x.grad.npy")), dx, 1e-12);
    CHECK(out.find("(0 never reached") != std::string::npos);
  }
}

TEST_CASE("tools: forward dumps every in-place stage as <blob>@<layer>, with its gradient") {
  if (!fs::exists(binary())) return;
  Tmp tmp;
  std::string out;

  SUBCASE("Convolution -> BatchNorm (in place) -> ReLU (in place)") {
    tmp.write("cbr.prototxt",
              "name: 'cbr'\n"
              "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 1 dim: 3 dim: 3 } } }\n"
              "layer { name: 'conv' type: 'Convolution' bottom: 'x' top: 'conv' convolution_param { num_output: 2"
              " kernel_size: 1 weight_filler { type: 'constant' value: 1 } bias_filler { type: 'constant' value: -0.5 } } }\n"
              "layer { name: 'bn' type: 'BatchNorm' bottom: 'conv' top: 'conv' }\n"
              "layer { name: 'relu' type: 'ReLU' bottom: 'conv' top: 'conv' }\n");
    std::vector<float> x(9), g(18);
    for (size_t i = 0; i < x.size(); ++i) x[i] = -1 + 0.25f * static_cast<float>(i);
    for (size_t i = 0; i < g.size(); ++i) g[i] = 0.5f + static_cast<float>(i);
    save_npy(tmp.path("x.npy"), Tensor::from_vector<float>(x, {1, 1, 3, 3}));
    save_npy(tmp.path("g.npy"), Tensor::from_vector<float>(g, {1, 2, 3, 3}));
    // TRAIN: BatchNorm normalises with the batch statistics, so about half its output is negative.
    REQUIRE(run("forward --model cbr.prototxt --phase train --input x=x.npy --grad conv=g.npy --dump d", out, tmp) == 0);
    INFO(out);
    auto conv = values(tmp.path("d/conv@conv.npy")), bn = values(tmp.path("d/conv@bn.npy")),
         relu = values(tmp.path("d/conv@relu.npy"));
    REQUIRE(conv.size() == 18);
    REQUIRE(bn.size() == 18);
    REQUIRE(relu.size() == 18);
    for (size_t i = 0; i < 18; ++i) CHECK(conv[i] == doctest::Approx(x[i % 9] - 0.5));
    size_t negative = 0;
    for (size_t i = 0; i < 18; ++i) {
      CHECK(relu[i] == std::max(bn[i], 0.0));
      negative += bn[i] < 0;
    }
    CHECK(negative > 0);                               // so the two stages differ
    CHECK(values(tmp.path("d/conv.npy")) == relu);     // the final value, as before
    CHECK(!fs::exists(tmp.path("d/x@in.npy")));        // written once: x.npy only
    CHECK(fs::exists(tmp.path("d/x.npy")));
    // Gradients per stage: g arrives after the ReLU, the ReLU's mask before it.
    auto g_relu = values(tmp.path("d/conv@relu.grad.npy")), g_bn = values(tmp.path("d/conv@bn.grad.npy"));
    REQUIRE(g_bn.size() == 18);
    for (size_t i = 0; i < 18; ++i) {
      CHECK(g_relu[i] == g[i]);
      CHECK(g_bn[i] == (bn[i] > 0 ? g[i] : 0.0));
    }
    CHECK(values(tmp.path("d/conv.grad.npy")) == g_relu);
    CHECK(load_npy(tmp.path("d/conv@conv.grad.npy")).shape() == Shape{1, 2, 3, 3});
    CHECK(fs::exists(tmp.path("d/x.grad.npy")));
    CHECK(all_zero(values(tmp.path("d/bn.mean.grad.npy"))));  // state: never reached, still written
    CHECK(out.find("3 in-place stages") != std::string::npos);
  }

  SUBCASE("a deploy input rewritten in place: its fed value is the stage 'input'") {
    tmp.write("dep.prototxt",
              "name: 'dep' input: 'x' input_shape { dim: 2 dim: 2 }\n"
              "layer { name: 'relu' type: 'ReLU' bottom: 'x' top: 'x' }\n");
    save_npy(tmp.path("x.npy"), Tensor::from_vector<float>({-1, 2, 3, -4}, {2, 2}));
    save_npy(tmp.path("g.npy"), Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2}));
    REQUIRE(run("forward --model dep.prototxt --input x=x.npy --grad x=g.npy --dump d", out, tmp) == 0);
    INFO(out);
    CHECK(values(tmp.path("d/x@input.npy")) == std::vector<double>{-1, 2, 3, -4});
    CHECK(values(tmp.path("d/x@relu.npy")) == std::vector<double>{0, 2, 3, 0});
    CHECK(values(tmp.path("d/x.npy")) == std::vector<double>{0, 2, 3, 0});
    CHECK(values(tmp.path("d/x.grad.npy")) == std::vector<double>{1, 2, 3, 4});
    CHECK(values(tmp.path("d/x@input.grad.npy")) == std::vector<double>{0, 2, 3, 0});
  }
}

TEST_CASE("tools: forward --grad and --dtype errors name the flag, the blob and the shapes") {
  if (!fs::exists(binary())) return;
  Tmp tmp;
  tmp.write("acc.prototxt",
            "name: 'acc'\n"
            "layer { name: 'in' type: 'Input' top: 'x' top: 'label' input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }\n"
            "layer { name: 'fc' type: 'InnerProduct' bottom: 'x' top: 'y' inner_product_param { num_output: 2 } }\n"
            "layer { name: 'acc' type: 'Accuracy' bottom: 'y' bottom: 'label' top: 'acc' }\n");
  save_npy(tmp.path("x.npy"), Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  save_npy(tmp.path("label.npy"), Tensor::from_vector<int32_t>({0, 1}, {2}));
  save_npy(tmp.path("g.npy"), Tensor::from_vector<float>({1, 1, 1, 1}, {2, 2}));
  save_npy(tmp.path("g23.npy"), Tensor::from_vector<float>({1, 1, 1, 1, 1, 1}, {2, 3}));
  save_npy(tmp.path("g0.npy"), Tensor::scalar(1));
  save_npy(tmp.path("gi.npy"), Tensor::from_vector<int32_t>({1, 1, 1, 1}, {2, 2}));
  const std::string common = "forward --model acc.prototxt --input x=x.npy --input label=label.npy --dump d ";
  std::string out;
  auto fails_with = [&](const std::string& flags, const std::vector<std::string>& parts) {
    CHECK(run(common + flags, out, tmp) != 0);
    INFO(flags << "\n" << out);
    for (const auto& part : parts) CHECK(out.find(part) != std::string::npos);
    CHECK(!fs::exists(tmp.path("d")));  // a failed run writes nothing
  };
  fails_with("--grad yy=g.npy", {"--grad yy=g.npy", "no blob 'yy'", "did you mean 'y'"});
  fails_with("--grad y=g23.npy", {"--grad y=g23.npy", "blob 'y'", "[2, 3]", "[2, 2]"});
  fails_with("--grad acc=g0.npy", {"--grad acc=g0.npy", "blob 'acc'", "does not depend on anything that requires grad"});
  fails_with("--grad y=g.npy --grad y=g.npy", {"--grad y=g.npy", "blob 'y'", "given twice"});
  fails_with("--grad y=gi.npy", {"--grad y=gi.npy", "int32"});
  fails_with("--grad y", {"--grad expects BLOB=file.npy"});
  fails_with("--dtype float16", {"--dtype must be float32 or float64"});
  // The right call, for contrast: it passes.
  CHECK(run(common + "--grad y=g.npy", out, tmp) == 0);
}

TEST_CASE("tools: make-dataset scenes writes the renderer's images and lists MultimodalImageData reads") {
  Tmp tmp;
  std::string out;
  REQUIRE(run("make-dataset scenes --out ds --count 5 --size 32 --seed 3", out, tmp) == 0);
  CHECK(out.find("wrote 4 training and 1 test samples") != std::string::npos);
  datasets::SceneSpec spec;
  spec.width = spec.height = 32;
  const datasets::SceneImages ref = datasets::make_scene_images(spec, 3, 4);  // the test sample
  for (int m = 0; m < datasets::kSceneModalities; ++m) {
    const std::string name = datasets::kSceneModalityNames[m];
    INFO("modality " << name);
    const Image file = datasets::load_image(tmp.path("ds/" + name + "/00004.png"));
    CHECK(file.bits == ref.modality(m).bits);
    CHECK(file.pixels == ref.modality(m).pixels);
  }
  CHECK(datasets::load_label(tmp.path("ds/label/00004.png")).pixels == ref.label.pixels);
  std::ifstream all(tmp.path("ds/test_all.txt")), rgbd(tmp.path("ds/test.txt"));
  std::string line;
  std::getline(all, line);
  CHECK(line ==
        "rgb/00004.png depth/00004.png normal/00004.png shading/00004.png albedo/00004.png edges/00004.png "
        "label/00004.png");
  std::getline(rgbd, line);
  CHECK(line == "rgb/00004.png depth/00004.png label/00004.png");
  // The RGB-D list through the image-list data layer: labels as rendered.
  proto::LayerParameter lp;
  parse_text("name: 'd' type: 'MultimodalImageData' top: 'data' top: 'label' multimodal_data_param { source: '" +
                 tmp.path("ds/test.txt") +
                 "' batch_size: 1 num_classes: 8 threads: 0 modality { name: 'rgb' } "
                 "modality { name: 'depth' channels: 1 replicate: 3 scale: 0.001 } }",
             "<layer>", lp);
  auto layer = create_layer(lp);
  Generator gen(1);
  LayerContext lctx{gen};
  lctx.phase = proto::TEST;
  CHECK(layer->setup({}, lctx) == std::vector<Shape>{{2, 3, 32, 32}, {1, 32, 32}});
  ForwardContext ctx;
  ctx.phase = proto::TEST;
  auto labels = layer->forward({}, ctx)[1].to_vector<int32_t>();
  CHECK(std::equal(labels.begin(), labels.end(), ref.label.pixels.begin()));
  CHECK(run("make-dataset scenes --out ds2 --count 4 --train 2", out, tmp) != 0);
  CHECK(out.find("not both") != std::string::npos);
}
