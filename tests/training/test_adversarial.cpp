// The solver with `player`s and its adversarial game (core/solver.h, core/adversarial.h): the
// GAN losses' values, alternating updates that touch only their own player, tests with image
// grids and metrics, snapshots of every player, bit-exact resume, SIGINT, and the errors of a
// bad solver. On a tiny PNG set written here: inputs a (RGB) and b (grey), target t.
#include <csignal>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/adversarial.h"
#include "core/solver.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "datasets/image.h"
#include "tests/gradcheck.h"
#include "tests/temp_dir.h"
#include "zoo/zoo.h"

using namespace mmfuse;
using mmfuse::testing::TempDir;
namespace fs = std::filesystem;

namespace {

int64_t g_gan_sigint_at = -1, g_gan_nan_at = -1;
// Passes its bottom through; raises SIGINT or emits NaN at a chosen TRAIN iteration.
class GanTriggerLayer : public Layer {
 public:
  using Layer::Layer;
  std::vector<Shape> setup(const std::vector<Shape>& b, LayerContext&) override { return {b[0]}; }
  TensorList forward(const TensorList& b, ForwardContext& ctx) override {
    if (ctx.phase == proto::TRAIN && ctx.iteration == g_gan_sigint_at) std::raise(SIGINT);
    if (ctx.phase == proto::TRAIN && ctx.iteration == g_gan_nan_at) return {b[0] * std::nan("")};
    return {b[0]};
  }
};

}  // namespace

MMF_REGISTER_LAYER(TestGanTrigger, GanTriggerLayer)

namespace {

constexpr int kSize = 16, kSamples = 8;

void write_pairs(const TempDir& dir) {
  for (const char* m : {"a", "b", "t"}) fs::create_directories(dir.path / m);
  std::ofstream list(dir / "list.txt");
  for (int k = 0; k < kSamples; ++k) {
    Image a(kSize, kSize, 3), b(kSize, kSize, 1), t(kSize, kSize, 3);
    for (int y = 0; y < kSize; ++y)
      for (int x = 0; x < kSize; ++x) {
        int s = (x * 7 + y * 3 + k * 29) % 256, g = (x * y + 11 * k) % 256;
        for (int c = 0; c < 3; ++c) a.at(y, x, c) = static_cast<uint16_t>((s + 60 * c) % 256);
        b.at(y, x) = static_cast<uint16_t>(g);
        for (int c = 0; c < 3; ++c) t.at(y, x, c) = static_cast<uint16_t>((s * g / 255 + 40 * c) % 256);
      }
    std::string name = std::to_string(k) + ".png";
    write_png(dir / ("a/" + name), a);
    write_png(dir / ("b/" + name), b);
    write_png(dir / ("t/" + name), t);
    list << "a/" << name << " b/" << name << " t/" << name << " 0\n";
  }
}

std::string generator_text(const TempDir& dir) {
  std::string norm = " scale: 0.00392156862745 mean: 0.5 mean: 0.5 mean: 0.5 std: 0.5 std: 0.5 std: 0.5 }";
  return "name: 'g'\nlayer { name: 'data' type: 'MultimodalImageData' top: 'a' top: 'b' top: 't' top: 'label'\n"
         "  multimodal_data_param { source: '" + dir / "list.txt" + "' batch_size: 2 stacked: false task: CLASSIFICATION\n"
         "    threads: 1 seed: 3\n    modality { name: 'a' channels: 3" + norm + "\n"
         "    modality { name: 'b' channels: 1 replicate: 3" + norm + "\n    modality { name: 't' channels: 3" + norm +
         " } }\n"
         "layer { name: 'trigger' type: 'TestGanTrigger' bottom: 'a' top: 'a' }\n"
         "layer { name: 'cond' type: 'Concat' bottom: 'a' bottom: 'b' top: 'condition' }\n"
         "layer { name: 'conv' type: 'Convolution' bottom: 'condition' top: 'conv' convolution_param { num_output: 3 "
         "kernel_size: 3 pad: 1 weight_filler { type: 'gaussian' std: 0.1 } } }\n"
         "layer { name: 'drop' type: 'Dropout' bottom: 'conv' top: 'conv' dropout_param { dropout_ratio: 0.2 } }\n"
         "layer { name: 'tanh' type: 'TanH' bottom: 'conv' top: 'fake' }\n"
         "layer { name: 'l1' type: 'L1Loss' bottom: 'fake' bottom: 't' top: 'l1' loss_weight: 10 }\n"
         "layer { name: 'm' type: 'ImageMetric' bottom: 'fake' bottom: 't' top: 'fake_l1' top: 'fake_rmse' "
         "top: 'fake_psnr' top: 'fake_ssim' include { phase: TEST } image_metric_param { ssim_window: 3 } }\n"
         "layer { name: 'silence' type: 'Silence' bottom: 'label' bottom: 'condition' }\n";
}

std::string discriminator_text() {
  return "name: 'd'\nlayer { name: 'in' type: 'Input' top: 'condition' top: 'image' input_param { "
         "shape { dim: 2 dim: 6 dim: 16 dim: 16 } shape { dim: 2 dim: 3 dim: 16 dim: 16 } } }\n"
         "layer { name: 'pair' type: 'Concat' bottom: 'condition' bottom: 'image' top: 'pair' }\n"
         "layer { name: 'c1' type: 'Convolution' bottom: 'pair' top: 'c1' convolution_param { num_output: 4 "
         "kernel_size: 4 stride: 2 pad: 1 weight_filler { type: 'gaussian' std: 0.1 } } }\n"
         "layer { name: 'n1' type: 'InstanceNorm' bottom: 'c1' top: 'c1' }\n"
         "layer { name: 'r1' type: 'ReLU' bottom: 'c1' top: 'c1' relu_param { negative_slope: 0.2 } }\n"
         "layer { name: 'c2' type: 'Convolution' bottom: 'c1' top: 'patch' convolution_param { num_output: 1 "
         "kernel_size: 4 stride: 1 pad: 1 weight_filler { type: 'gaussian' std: 0.1 } } }\n";
}

// The solver's text: `extra` is appended (players' overrides go through `g_extra` / `d_extra`).
std::string solver_text(const TempDir& dir, const std::string& prefix, int max_iter, const std::string& extra = "",
                        const std::string& g_extra = "", const std::string& d_extra = "",
                        const std::string& adversarial_extra = "") {
  std::ofstream(dir / "g.prototxt") << generator_text(dir);
  std::ofstream(dir / "d.prototxt") << discriminator_text();
  std::string text = "player { name: 'generator' net: '" + dir / "g.prototxt" + "' test_iter: 2 " + g_extra + " }\n" +
                     "player { name: 'discriminator' net: '" + dir / "d.prototxt" + "' " + d_extra + " }\n" +
                     "adversarial { fake: 'fake' real: 't' condition: 'condition' grid: 'a' grid: 'b' grid: 'fake' "
                     "grid: 't' " + adversarial_extra + " }\n"
                     "type: 'Adam' base_lr: 0.01 momentum: 0.5 momentum2: 0.999 max_iter: " + std::to_string(max_iter) +
                     " display: 1 snapshot_prefix: '" + dir / prefix + "' random_seed: 5 solver_mode: CPU\n" + extra;
  return text;
}

proto::SolverParameter solver_param(const TempDir& dir, const std::string& prefix, int max_iter,
                                    const std::string& extra = "", const std::string& g_extra = "",
                                    const std::string& d_extra = "", const std::string& adversarial_extra = "") {
  return read_solver_text(solver_text(dir, prefix, max_iter, extra, g_extra, d_extra, adversarial_extra),
                          "gan_solver.prototxt");
}

SolverOptions quiet() {
  SolverOptions o;
  o.out = nullptr;
  return o;
}

std::vector<float> values_of(const proto::NetWeights& w) {
  std::vector<float> v;
  for (const auto& b : w.param()) v.insert(v.end(), b.data().begin(), b.data().end());
  return v;
}

std::string construction_error(const proto::SolverParameter& p) {
  try {
    Solver s(p, "gan_solver.prototxt", quiet());
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("gan_loss: LSGAN's squares and BCE on logits, real and fake") {
  Tensor x = Tensor::from_vector(std::vector<double>{-2, 0, 3, 0.5}, {1, 1, 2, 2}, DType::f64);
  using P = proto::AdversarialParameter;
  CHECK(gan_loss(x, true, P::LSGAN).item() == doctest::Approx((9 + 1 + 4 + 0.25) / 4));
  CHECK(gan_loss(x, false, P::LSGAN).item() == doctest::Approx((4 + 0 + 9 + 0.25) / 4));
  auto softplus = [](double v) { return std::log1p(std::exp(v)); };
  double real = (softplus(2) + softplus(0) + softplus(-3) + softplus(-0.5)) / 4;
  double fake = (softplus(-2) + softplus(0) + softplus(3) + softplus(0.5)) / 4;
  CHECK(gan_loss(x, true, P::BCE).item() == doctest::Approx(real).epsilon(1e-12));
  CHECK(gan_loss(x, false, P::BCE).item() == doctest::Approx(fake).epsilon(1e-12));
  // Finite far from zero, where log(1 + exp(x)) would overflow.
  Tensor big = Tensor::from_vector(std::vector<double>{800, -800}, {2}, DType::f64);
  CHECK(gan_loss(big, true, P::BCE).item() == doctest::Approx(400));
  CHECK(gan_loss(big, false, P::BCE).item() == doctest::Approx(400));
  Generator gen(1);
  for (bool target : {true, false})
    for (auto mode : {P::LSGAN, P::BCE}) {
      auto rep = testing::gradcheck([&](const TensorList& in) { return gan_loss(in[0], target, mode); },
                                    {testing::random_input({2, 3}, gen, -2, 2)});
      CHECK_MESSAGE(rep.ok, rep.message);
    }
}

TEST_CASE("players: tests, grids, metrics, every player's snapshot; resume is bit-exact") {
  TempDir dir("gan_resume");
  write_pairs(dir);
  proto::NetWeights g0, d0;
  {
    Solver s(solver_param(dir, "run", 6, "snapshot: 3 test_interval: 3"), "", quiet());
    g0 = net_weights(*s.player("generator").net);
    d0 = net_weights(*s.player("discriminator").net);
    CHECK(s.solve() == Solver::Outcome::finished);
    CHECK(s.iter() == 6);
  }
  for (const char* f : {"run_iter_3.generator.weights", "run_iter_3.discriminator.weights", "run_iter_3.solverstate",
                        "run_iter_6.generator.weights", "run_iter_6.discriminator.weights", "run_iter_6.solverstate",
                        "run_iter_3_grid.png", "run_iter_6_grid.png", "run_metrics.jsonl", "run_curve.svg"})
    CHECK_MESSAGE(fs::exists(dir / f), f);
  // Both players learned.
  proto::NetWeights g6 = read_weights(dir / "run_iter_6.generator.weights");
  proto::NetWeights d6 = read_weights(dir / "run_iter_6.discriminator.weights");
  CHECK(values_of(g6) != values_of(g0));
  CHECK(values_of(d6) != values_of(d0));
  // The grid: a row per sample (batch 2), a column per blob (a, b, fake, t), 2-pixel gaps.
  Image grid = datasets::load_image(dir / "run_iter_6_grid.png");
  CHECK(grid.width == 4 * (kSize + 2) - 2);
  CHECK(grid.height == 2 * (kSize + 2) - 2);
  // The metrics log holds the training records with the game's losses and the test's metrics.
  std::ifstream log(dir / "run_metrics.jsonl");
  std::string all((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  CHECK(all.find("\"D_real\"") != std::string::npos);
  CHECK(all.find("\"G_gan\"") != std::string::npos);
  CHECK(all.find("fake_psnr") != std::string::npos);
  CHECK(all.find("fake_ssim") != std::string::npos);

  // Resume at 3: the weights of iteration 6 again, bit for bit (dropout and data included).
  {
    Solver s(solver_param(dir, "resumed", 6, "snapshot: 3 test_interval: 3"), "", quiet());
    s.restore(dir / "run_iter_3.solverstate");
    CHECK(s.iter() == 3);
    CHECK(s.solve() == Solver::Outcome::finished);
  }
  CHECK(values_of(read_weights(dir / "resumed_iter_6.generator.weights")) == values_of(g6));
  CHECK(values_of(read_weights(dir / "resumed_iter_6.discriminator.weights")) == values_of(d6));
  proto::SolverState a, b;
  read_binary(dir / "run_iter_6.solverstate", a);
  read_binary(dir / "resumed_iter_6.solverstate", b);
  REQUIRE(a.history_size() == b.history_size());
  for (int i = 0; i < a.history_size(); ++i) {
    CHECK(a.history(i).name() == b.history(i).name());
    CHECK(std::vector<float>(a.history(i).data().begin(), a.history(i).data().end()) ==
          std::vector<float>(b.history(i).data().begin(), b.history(i).data().end()));
  }
}

TEST_CASE("players: each update moves only its own player") {
  TempDir dir("gan_players");
  write_pairs(dir);
  for (bool freeze_generator : {true, false}) {
    INFO("generator frozen: ", freeze_generator);
    Solver s(solver_param(dir, "p", 3, "snapshot_after_train: false", freeze_generator ? "base_lr: 0" : "",
                               freeze_generator ? "" : "base_lr: 0"),
                  "", quiet());
    auto g0 = values_of(net_weights(*s.player("generator").net));
    auto d0 = values_of(net_weights(*s.player("discriminator").net));
    CHECK(s.solve() == Solver::Outcome::finished);
    auto g3 = values_of(net_weights(*s.player("generator").net));
    auto d3 = values_of(net_weights(*s.player("discriminator").net));
    CHECK((g3 == g0) == freeze_generator);
    CHECK((d3 == d0) == !freeze_generator);
  }
}

TEST_CASE("players: SIGINT snapshots every player and stops; BCE trains too") {
  TempDir dir("gan_sigint");
  write_pairs(dir);
  g_gan_sigint_at = 2;
  Solver s(solver_param(dir, "int", 10, "", "", "", "gan_mode: BCE d_steps: 2"), "", quiet());
  auto outcome = s.solve();
  g_gan_sigint_at = -1;
  CHECK(outcome == Solver::Outcome::interrupted);
  CHECK(s.iter() == 3);
  CHECK(fs::exists(dir / "int_iter_3.generator.weights"));
  CHECK(fs::exists(dir / "int_iter_3.discriminator.weights"));
  CHECK(s.message().find("resume with --snapshot") != std::string::npos);
}

TEST_CASE("players: a snapshot is written only from weights that gave finite losses") {
  TempDir dir("gan_nan");
  write_pairs(dir);
  SUBCASE("a NaN at iteration 4 keeps the snapshot of iteration 4 off the disk") {
    g_gan_nan_at = 4;
    Solver s(solver_param(dir, "a", 10, "snapshot: 2"), "", quiet());
    auto outcome = s.solve();
    g_gan_nan_at = -1;
    CHECK(outcome == Solver::Outcome::diverged);
    CHECK(fs::exists(dir / "a_iter_2.generator.weights"));
    CHECK_FALSE(fs::exists(dir / "a_iter_4.generator.weights"));
    CHECK_FALSE(fs::exists(dir / "a_iter_4.solverstate"));
    CHECK(s.message().find("iteration 4: the discriminator's loss is NaN") != std::string::npos);
    CHECK(s.message().find("the last good one is " + dir / "a_iter_2.solverstate") != std::string::npos);
  }
  SUBCASE("the end-of-run snapshot is checked by one more pass of the game, which leaves no trace") {
    g_gan_nan_at = 4;
    Solver s(solver_param(dir, "b", 4, "snapshot: 2"), "", quiet());
    auto outcome = s.solve();
    g_gan_nan_at = -1;
    CHECK(outcome == Solver::Outcome::diverged);
    CHECK(fs::exists(dir / "b_iter_2.discriminator.weights"));
    CHECK_FALSE(fs::exists(dir / "b_iter_4.discriminator.weights"));
    CHECK(s.message().find("on the weights of iteration 4") != std::string::npos);
    Solver good(solver_param(dir, "c", 4, "snapshot: 4"), "", quiet());
    CHECK(good.solve() == Solver::Outcome::finished);
    CHECK(values_of(read_weights(dir / "c_iter_4.generator.weights")) ==
          values_of(net_weights(*good.player("generator").net)));
    CHECK(values_of(read_weights(dir / "c_iter_4.discriminator.weights")) ==
          values_of(net_weights(*good.player("discriminator").net)));
  }
}

TEST_CASE("players: the lines of the one training loop; a state of the other kind is refused") {
  TempDir dir("gan_lines");
  write_pairs(dir);
  // Everything the solver prints, read back from a file.
  auto run = [&](const std::string& prefix, const std::string& resume) {
    std::FILE* out = std::tmpfile();
    REQUIRE(out);
    SolverOptions o;
    o.out = out;
    {
      Solver s(solver_param(dir, prefix, 4, "snapshot: 2 test_interval: 4"), "", o);
      if (!resume.empty()) s.restore(resume);
      CHECK(s.solve() == Solver::Outcome::finished);
    }
    std::string text;
    std::rewind(out);
    for (int c; (c = std::fgetc(out)) != EOF;) text += static_cast<char>(c);
    std::fclose(out);
    return text;
  };
  const std::string text = run("lines", "");
  INFO(text);
  for (const char* part : {"Solver: adversarial (LSGAN", "\n    player generator: Adam, base_lr 0.01",
                           "Solving 2 nets from iteration 0 to 4 (batch 2 from blob",
                           "Iteration 1 (", "lr generator = 0.01, lr discriminator = 0.01, elapsed ",
                           "\n    Train net output #0: G_total = ", "\n    Train net output #4: l1 = ",
                           "(* 10 = ", "Iteration 4, Testing player generator", "Test net generator output #",
                           "Snapshot at iteration 2: ", "Optimization done at iteration 4 ("})
    CHECK_MESSAGE(text.find(part) != std::string::npos, part);
  const std::string base = dir / "lines_iter_2";
  const std::string resumed = run("again", base + ".solverstate");
  CHECK(resumed.find("Resuming from " + base + ".solverstate at iteration 2 (weights " + base + ".generator.weights, " +
                     base + ".discriminator.weights)") != std::string::npos);
  // A single-net state names one weights file, not a player's.
  proto::SolverState one;
  read_binary(base + ".solverstate", one);
  one.set_learned_net(dir / "net_iter_2.weights");
  write_binary_atomic(dir / "net_iter_2.solverstate", one);
  Solver s(solver_param(dir, "other", 4), "", quiet());
  try {
    s.restore(dir / "net_iter_2.solverstate");
    FAIL("a single-net state was restored into players");
  } catch (const IOError& e) {
    CHECK(std::string(e.what()).find("a state written by a single-net Solver?") != std::string::npos);
  }
}

TEST_CASE("players: `mmfuse check --solver` and `mmfuse train` take them; --weights is refused") {
  TempDir dir("gan_tools");
  write_pairs(dir);
  std::ofstream(dir / "gan_solver.prototxt") << solver_text(dir, "cli", 2);
  std::string g = generator_text(dir);  // without the test-only trigger layer, which the binary has not
  g.erase(g.find("layer { name: 'trigger'"), g.find("layer { name: 'cond'") - g.find("layer { name: 'trigger'"));
  std::ofstream(dir / "g.prototxt") << g;
  std::string out;
  CHECK(testing::run_mmfuse(dir.path, "check --solver gan_solver.prototxt", out) == 0);
  CHECK_MESSAGE(out.find("gan_solver.prototxt: Adam solver, player generator 'g', player discriminator 'd', "
                         "1 test net(s): ok") != std::string::npos, out);
  CHECK(testing::run_mmfuse(dir.path, "train --solver gan_solver.prototxt", out) == 0);
  CHECK_MESSAGE(out.find("Optimization done at iteration 2") != std::string::npos, out);
  CHECK(fs::exists(dir / "cli_iter_2.discriminator.weights"));
  CHECK(testing::run_mmfuse(dir.path, "train --solver gan_solver.prototxt --weights cli_iter_2.generator.weights", out) == 1);
  CHECK_MESSAGE(out.find("--weights is for single-net solvers") != std::string::npos, out);
}

TEST_CASE("players: a bad solver is refused naming the field") {
  TempDir dir("gan_errors");
  write_pairs(dir);
  auto has = [](const std::string& what, const std::string& part) {
    INFO(what);
    CHECK(what.find(part) != std::string::npos);
  };
  proto::SolverParameter p = solver_param(dir, "e", 1);
  p.clear_adversarial();
  has(construction_error(p), "need a schedule");
  p = solver_param(dir, "e", 1);
  p.mutable_player(1)->set_name("generator");
  has(construction_error(p), "given twice");
  p = solver_param(dir, "e", 1);
  p.set_net("x.prototxt");
  has(construction_error(p), "each player names its net");
  p = solver_param(dir, "e", 1);
  p.mutable_adversarial()->set_fake(0, "nothing");
  has(construction_error(p), "fake 'nothing' is not a blob");
  p = solver_param(dir, "e", 1);
  p.mutable_adversarial()->set_condition("a");  // 3 channels; D's condition input has 6
  has(construction_error(p), "gan_solver.prototxt: adversarial:");
  p = solver_param(dir, "e", 1);
  p.mutable_player(0)->set_type("Adagrad");
  has(construction_error(p), "player #0 'generator'");
  p = solver_param(dir, "e", 1);
  p.mutable_adversarial()->add_grid("nothing");
  has(construction_error(p), "grid blob 'nothing'");
  p = solver_param(dir, "e", 1);
  p.mutable_player(1)->set_momentum(1.5);  // the optimizer's settings are checked per player
  has(construction_error(p), "player #1 'discriminator': momentum must be in [0, 1)");
  p = solver_param(dir, "e", 1);
  p.add_weights("g.weights");
  has(construction_error(p), "`weights` (fine-tuning) is for single-net solvers");
}

TEST_CASE("models/translation: every generator builds on scene-sized inputs, with fusion only in AsymFusion") {
  const auto files = zoo::translation_models();
  int generators = 0;
  for (const auto& [path, text] : files) {
    if (path.find("_solver") != std::string::npos || path.find("discriminator") != std::string::npos) continue;
    INFO(path);
    ++generators;
    // The data layer's tops fed instead: the six scene modalities [4, 3, 64, 64] and the label.
    proto::NetParameter net = read_net_text(text, path);
    proto::NetParameter fed;
    fed.set_name(net.name());
    proto::LayerParameter* input = fed.add_layer();
    input->set_name("data");
    input->set_type("Input");
    for (const char* m : {"rgb", "depth", "normal", "shading", "albedo", "edges"}) {
      input->add_top(m);
      proto::BlobShape* shape = input->mutable_input_param()->add_shape();
      for (int64_t d : {4, 3, 64, 64}) shape->add_dim(d);
    }
    input->add_top("label");
    proto::BlobShape* label = input->mutable_input_param()->add_shape();
    for (int64_t d : {4, 64, 64}) label->add_dim(d);
    for (const auto& l : net.layer())
      if (l.type() != "MultimodalImageData") *fed.add_layer() = l;
    Net g(fed, proto::TEST);
    bool asym = path.find("asymfusion") != std::string::npos;
    int shuffles = 0;
    for (const auto& l : net.layer()) shuffles += l.type() == "ChannelShuffle";
    CHECK(shuffles == (asym ? 2 : 0));
    int judged = 0;  // the predictions under an L1 loss: each branch and the ensemble
    for (const auto& l : net.layer())
      if (l.type() == "L1Loss") {
        CHECK(g.blob_shape(l.bottom(0)) == Shape{4, 3, 64, 64});
        ++judged;
      }
    CHECK(judged == (asym ? 3 : 1));
    CHECK(g.blob_shape("condition")[1] == (path.find("single") != std::string::npos ? 3 : 6));
  }
  CHECK(generators == 10);
  for (int c : {3, 6}) {
    Net d(read_net_text(files.at("models/translation/discriminator_c" + std::to_string(c) + ".prototxt")), proto::TRAIN);
    CHECK(d.blob_shape("patch") == Shape{4, 1, 6, 6});  // 70x70 patches on a 64x64 image
  }
}
