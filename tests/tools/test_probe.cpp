// `mmfuse probe` (probe/): each statistic on a tiny case whose answer is known, the ablations'
// identities, the metrics-log path of the ensemble, the files and the command.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "core/metrics_log.h"
#include "core/prototxt.h"
#include "core/random.h"
#include "core/snapshot.h"
#include "probe/report.h"
#include "tests/gradcheck.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
using namespace mmfuse::probe;
namespace fs = std::filesystem;

namespace {

// Both modalities of the stacked branch are the RGB image (depth is silenced), so the branches
// are identical; the shuffle keeps every channel (an identity) and the pixel shift adds a
// branch that is all zero.
const char* kStackedNet = R"(
name: "probe_stacked"
layer { name: "data" type: "SyntheticRgbdData" top: "rgb" top: "depth" top: "label"
        synthetic_rgbd_param { batch_size: 2 size: 16 seed: 3 num_samples: 8 stacked: false } }
layer { name: "mute" type: "Silence" bottom: "depth" }
layer { name: "stack" type: "ModalityStack" bottom: "rgb" bottom: "rgb" top: "x" }
layer { name: "c1" type: "Convolution" bottom: "x" top: "c1"
        convolution_param { num_output: 10 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bn" type: "BatchNorm" bottom: "c1" top: "c1" batch_norm_param { modalities: 2 affine: true } }
layer { name: "relu" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "cs" type: "ChannelShuffle" bottom: "c1" top: "cs" channel_shuffle_param { keep_ratio: 1 } }
layer { name: "zero" type: "Convolution" bottom: "cs" top: "z"
        convolution_param { num_output: 10 kernel_size: 1 bias_term: false weight_filler { type: "constant" value: 0 } } }
layer { name: "ps" type: "PixelShift" bottom: "cs" bottom: "z" top: "ps" }
layer { name: "cls" type: "Convolution" bottom: "ps" top: "logits"
        convolution_param { num_output: 7 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "metrics" type: "SegmentationMetric" bottom: "logits" bottom: "label" top: "branch_metrics"
        segmentation_metric_param { num_classes: 7 modalities: 2 } }
layer { name: "ensemble" type: "ModalityEnsemble" bottom: "logits" top: "ens" }
layer { name: "ensemble_metrics" type: "SegmentationMetric" bottom: "ens" bottom: "label" top: "ensemble_metrics"
        segmentation_metric_param { num_classes: 7 } }
)";

// Two streams named by their modality ("rgb.*", "depth.*") joined by an MMTM that starts as
// the identity.
const char* kStreamsNet = R"(
name: "probe_streams"
layer { name: "data" type: "SyntheticRgbdData" top: "rgb" top: "depth" top: "label"
        synthetic_rgbd_param { batch_size: 4 size: 16 seed: 5 num_samples: 16 stacked: false classification: true } }
layer { name: "rgb.conv" type: "Convolution" bottom: "rgb" top: "rgb.conv"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "rgb.relu" type: "ReLU" bottom: "rgb.conv" top: "rgb.conv" }
layer { name: "depth.conv" type: "Convolution" bottom: "depth" top: "depth.conv"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "depth.relu" type: "ReLU" bottom: "depth.conv" top: "depth.conv" }
layer { name: "mmtm" type: "MMTM" bottom: "rgb.conv" bottom: "depth.conv" top: "mmtm.rgb" top: "mmtm.depth"
        mmtm_param { identity_init: true ratio: 2 } }
layer { name: "sum" type: "Eltwise" bottom: "mmtm.rgb" bottom: "mmtm.depth" top: "sum" }
layer { name: "pool" type: "Pooling" bottom: "sum" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 6 } }
layer { name: "accuracy" type: "Accuracy" bottom: "fc" bottom: "label" top: "accuracy" }
)";

ProbeOptions quick() {
  ProbeOptions o;
  o.iterations = 2;
  o.image_samples = 1;
  return o;
}

const Ablation& find_ablation(const ProbeResult& r, const std::string& kind, const std::string& target) {
  for (const auto& a : r.ablations)
    if (a.kind == kind && a.target == target) return a;
  FAIL("no ablation " << kind << " " << target);
  return r.ablations.front();
}

}  // namespace

TEST_CASE("probe: distances between two modalities' Gaussians") {
  GaussianDistance same = gaussian_distance(0.3, 2.0, 0.3, 2.0);
  CHECK(same.symmetric_kl == 0);
  CHECK(same.wasserstein == 0);
  GaussianDistance shifted = gaussian_distance(0, 1, 1, 1);  // KL = 1/2 each way
  CHECK(shifted.symmetric_kl == doctest::Approx(1.0));
  CHECK(shifted.wasserstein == doctest::Approx(1.0));
  CHECK(shifted.wasserstein_scaled == doctest::Approx(1.0));
  // N(0, 1) vs N(0, 4): KL = log 2 + 1/8 - 1/2 and log(1/2) + 2 - 1/2; W2 = |1 - 2|.
  GaussianDistance wider = gaussian_distance(0, 1, 0, 4);
  CHECK(wider.symmetric_kl == doctest::Approx(1.125));
  CHECK(wider.wasserstein == doctest::Approx(1.0));
  CHECK(wider.wasserstein_scaled == doctest::Approx(1 / std::sqrt(2.5)));
  CHECK_THROWS_AS(gaussian_distance(0, 0, 0, 1), Error);
}

TEST_CASE("probe: linear CKA") {
  Generator gen(7);
  auto random = [&](int64_t n, int64_t c) { return Tensor::randn({n, c}, gen, 0, 1, DType::f64).to_vector<double>(); };
  // The Gram-matrix form written out, as the reference for both of linear_cka's forms.
  auto reference = [](const std::vector<double>& x, int64_t cx, const std::vector<double>& y, int64_t cy, int64_t n) {
    auto gram = [n](std::vector<double> m, int64_t c) {
      for (int64_t j = 0; j < c; ++j) {
        double mean = 0;
        for (int64_t i = 0; i < n; ++i) mean += m[i * c + j] / static_cast<double>(n);
        for (int64_t i = 0; i < n; ++i) m[i * c + j] -= mean;
      }
      std::vector<double> g(static_cast<size_t>(n * n), 0.0);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < n; ++k)
          for (int64_t j = 0; j < c; ++j) g[i * n + k] += m[i * c + j] * m[k * c + j];
      return g;
    };
    auto gx = gram(x, cx), gy = gram(y, cy);
    double xy = 0, xx = 0, yy = 0;
    for (size_t i = 0; i < gx.size(); ++i) xy += gx[i] * gy[i], xx += gx[i] * gx[i], yy += gy[i] * gy[i];
    return xy / std::sqrt(xx * yy);
  };
  for (auto [n, cx, cy] : {std::tuple<int64_t, int64_t, int64_t>{40, 5, 3}, {6, 20, 9}}) {
    CAPTURE(n);
    auto x = random(n, cx), y = random(n, cy);
    CHECK(linear_cka(x, cx, y, cy, n) == doctest::Approx(reference(x, cx, y, cy, n)).epsilon(1e-10));
    CHECK(linear_cka(x, cx, x, cx, n) == doctest::Approx(1.0).epsilon(1e-12));
  }
  // Invariant to a rotation and scaling of the features and to a shift.
  auto x = random(30, 2);
  std::vector<double> r(x.size());
  double c = std::cos(0.7), s = std::sin(0.7);
  for (int64_t i = 0; i < 30; ++i) {
    r[i * 2] = 3 * (c * x[i * 2] - s * x[i * 2 + 1]) + 5;
    r[i * 2 + 1] = 3 * (s * x[i * 2] + c * x[i * 2 + 1]) - 1;
  }
  CHECK(linear_cka(x, 2, r, 2, 30) == doctest::Approx(1.0).epsilon(1e-12));
  // Independent features: near 0 for many rows; a constant side has no CKA.
  CHECK(linear_cka(random(4000, 3), 3, random(4000, 3), 3, 4000) < 0.01);
  CHECK(std::isnan(linear_cka(random(10, 2), 2, std::vector<double>(10, 1.0), 1, 10)));
}

TEST_CASE("probe: identical modalities, an identity shuffle and a zero pixel-shift branch") {
  Net net(read_net_text(kStackedNet), proto::TEST);
  // The BatchNorm's statistics, equal across the two modalities but not across channels.
  for (auto& p : const_cast<Layer*>(net.layer("bn"))->params()) {
    if (p.value.dim() != 2) continue;
    std::vector<double> v;
    for (int m = 0; m < 2; ++m)
      for (int c = 0; c < 10; ++c) v.push_back(0.5 + 0.1 * c);
    p.value.copy_(Tensor::from_vector(v, p.value.shape()));
  }
  ProbeResult r = run_probe(net, quick());

  REQUIRE(r.modalities == std::vector<std::string>{"rgb", "depth"});
  CHECK(r.metric_name == "mIoU");
  REQUIRE(r.batch_norms.size() == 1);
  REQUIRE(r.batch_norms[0].pairs.size() == 1);
  for (double kl : r.batch_norms[0].pairs[0].symmetric_kl) CHECK(kl == 0);
  CHECK(r.batch_norms[0].gamma[0] == r.batch_norms[0].gamma[1]);

  // Every stacked stage compares two identical branches; the zero branch has no CKA.
  std::set<std::string> stages;
  for (const auto& c : r.cka) {
    stages.insert(c.blob);
    CHECK(c.cka.mean == doctest::Approx(1.0).epsilon(1e-9));
  }
  CHECK(stages == std::set<std::string>{"x", "c1", "cs", "ps", "logits"});
  REQUIRE(r.dead.size() == 1);
  CHECK(r.dead[0].blob == "z");

  REQUIRE(r.exchanges.size() == 2);
  for (const auto& e : r.exchanges) {
    REQUIRE(e.directions.size() == 2);
    for (const auto& d : e.directions) CHECK(d.share() == 0);
  }
  CHECK(r.exchanges[0].type == "ChannelShuffle");
  CHECK(r.exchanges[0].channel_share == 0);
  CHECK(r.exchanges[1].directions[0].groups.size() == 5);  // down, right, left, up, unshifted

  REQUIRE(r.ensembles.size() == 1);
  CHECK(r.ensembles[0].weights == std::vector<double>{0.5, 0.5});

  // Turning off a layer that is an identity, or breaking the silenced modality, changes nothing;
  // breaking the modality the net reads does.
  const auto& base = find_ablation(r, "baseline", "").metrics;
  REQUIRE(base.size() == 3);
  CHECK(find_ablation(r, "fusion off", "cs").metrics == base);
  CHECK(find_ablation(r, "fusion off", "ps").metrics == base);
  CHECK(find_ablation(r, "modality zeroed", "depth").metrics == base);
  CHECK(find_ablation(r, "modality noise", "depth").metrics == base);
  CHECK(find_ablation(r, "modality zeroed", "rgb").metrics != base);
  // Identical branches: the ensemble equals either branch.
  CHECK(find_ablation(r, "ensemble → branch", "ensemble → rgb").metrics == base);

  // Feature images: the inputs, before/after each fusion layer per modality, predictions.
  std::set<std::string> files;
  for (const auto& im : r.images) {
    CHECK(im.image.width > 0);
    files.insert(im.file);
  }
  CHECK(files.count("images/input_rgb_s0.png"));
  CHECK(files.count("images/cs_depth_s0_after.png"));
  CHECK(files.count("images/truth_s0.png"));
  CHECK(files.count("images/pred_ens_s0.png"));
}

TEST_CASE("probe: an MMTM initialised as the identity gates every channel by exactly 1") {
  Net net(read_net_text(kStreamsNet), proto::TEST);
  ProbeResult r = run_probe(net, quick());
  CHECK(r.metric_name == "accuracy");
  REQUIRE(r.gates.size() == 1);
  REQUIRE(r.gates[0].streams.size() == 2);
  for (const auto& s : r.gates[0].streams) {
    CHECK(s.all.count + s.undefined == 2 * 4 * 6);  // batches x samples x channels
    CHECK(s.all.mean == 1);
    CHECK(s.max_abs_from_one == 0);
    CHECK(!s.class_count.empty());
  }
  // The streams are paired by their modality prefix: rgb.conv with depth.conv.
  bool paired = false;
  for (const auto& c : r.cka) paired |= c.blob == "rgb.conv" && c.blob_b == "depth.conv";
  CHECK(paired);
  CHECK(find_ablation(r, "fusion off", "mmtm").metrics == find_ablation(r, "baseline", "").metrics);
}

TEST_CASE("probe: another model on the same batches (--compare)") {
  Net net(read_net_text(kStackedNet), proto::TEST);
  Net same(read_net_text(kStackedNet), proto::TEST);  // same seed, so the same weights and samples
  std::string shifted_text = kStackedNet;
  shifted_text.replace(shifted_text.find("seed: 3"), 7, "seed: 4");
  Net shifted(read_net_text(shifted_text), proto::TEST);  // other samples
  ProbeOptions o = quick();
  o.ablations = false;
  ProbeResult r = run_probe(net, o, {{"same", "", &same}, {"shifted", "", &shifted}});
  REQUIRE(r.comparisons.size() == 2);
  const auto& stages = r.comparisons[0].stages;
  std::set<std::string> blobs;
  for (const auto& s : stages) {
    blobs.insert(s.blob);
    CAPTURE(s.blob);
    CAPTURE(s.a);
    CHECK(s.cka.mean == doctest::Approx(1.0).epsilon(1e-9));
  }
  CHECK(blobs.count("input rgb"));
  CHECK(blobs.count("logits"));
  CHECK(blobs.count("ens"));
  // Different samples: the inputs no longer line up.
  for (const auto& s : r.comparisons[1].stages)
    if (s.blob == "input rgb") CHECK(s.cka.mean < 0.9);
}

TEST_CASE("probe: the ensemble's path over training from the metrics log") {
  testing::TempDir tmp("probe_log");
  std::string log = tmp / "run_metrics.jsonl";
  MetricsLog m(log);
  m.write_train(10, 0.1, 1.0, {}, 0, 0, 0, {{"ensemble", {0.4, 0.6}}});
  m.write_train(20, 0.1, 0.9, {}, 0, 0, 0, {{"ensemble", {0.3, 0.7}}});
  std::ifstream in(log);
  std::string line;
  std::getline(in, line);
  std::vector<double> w;
  REQUIRE(record_array(line, "layers", "ensemble", w));
  CHECK(w == std::vector<double>{0.4, 0.6});
  CHECK_FALSE(record_array(line, "layers", "other", w));

  Net net(read_net_text(kStackedNet), proto::TEST);
  auto e = ensemble_stats(net, log);
  REQUIRE(e.size() == 1);
  REQUIRE(e[0].path.size() == 2);
  CHECK(e[0].path[1].first == 20);
  CHECK(e[0].path[1].second == std::vector<double>{0.3, 0.7});
}

TEST_CASE("probe: probe.json, the page and the images are written") {
  Net net(read_net_text(kStackedNet), proto::TEST);
  ProbeResult r = run_probe(net, quick());
  testing::TempDir tmp("probe_out");
  write_probe(r, (tmp / "out"));
  std::ifstream in((tmp / "out/probe.json"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string json = ss.str();
  for (const char* key : {"\"batch_norm\"", "\"exchange\"", "\"mmtm\"", "\"cka\"", "\"ensemble\"", "\"ablations\"",
                          "\"dead_blobs\"", "\"images\""})
    CHECK(json.find(key) != std::string::npos);
  int depth = 0;
  for (char c : json) depth += (c == '{' || c == '[') - (c == '}' || c == ']');
  CHECK(depth == 0);
  CHECK(fs::exists((tmp / "out/index.html")));
  for (const auto& im : r.images) CHECK(fs::exists((tmp / ("out/" + im.file))));
  CHECK(probe_summary(r).find("zero on every test batch") != std::string::npos);
}

TEST_CASE("probe: a net without modalities is refused by name") {
  Net net(read_net_text("name: 'plain' layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 2 } } }"),
          proto::TEST);
  try {
    run_probe(net, quick());
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("no data layer with several modalities") != std::string::npos);
  }
}
