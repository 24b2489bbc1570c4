// The train/test/time/forward/export-weights/import-weights commands, run as the mmfuse binary
// next to this test executable (both are built into the same folder).
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/npy.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "tests/gradcheck.h"

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

std::string binary() { return (fs::read_symlink("/proc/self/exe").parent_path() / "mmfuse").string(); }

// Runs `mmfuse args`, returns the exit code; stdout+stderr in `out`.
int run(const std::string& args, std::string& out, const Tmp& tmp) {
  std::string log = tmp.path("log.txt");
  std::string cmd = "cd '" + tmp.dir.string() + "' && OMP_NUM_THREADS=1 '" + binary() + "' " + args + " > '" + log +
                    "' 2>&1";
  int status = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

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
  }
}
