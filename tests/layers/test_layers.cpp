// Layers: forward against the equivalent op calls, gradients through a small float64 net, and
// the fillers' statistics and determinism.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>

#include "core/filler.h"
#include "core/net.h"
#include "tests/gradcheck.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
using mmfuse::testing::check_close;
using mmfuse::testing::random_input;

namespace {

// A float64 net with one Input top "x" of `shape` (and "y" of `shape2` when given) followed by `layers`.
std::unique_ptr<Net> net_on(const Shape& shape, const std::string& layers, const Shape& shape2 = {}) {
  auto dims = [](const Shape& s) {
    std::string out = "shape {";
    for (int64_t d : s) {
      out += " dim: ";
      out += std::to_string(d);
    }
    return out + " }";
  };
  // Built with += (GCC 12's -Wrestrict misfires on chained operator+ of literals here).
  std::string text = "layer { name: \"in\" type: \"Input\" top: \"x\"";
  if (!shape2.empty()) text += " top: \"y\"";
  text += " input_param { ";
  text += dims(shape);
  if (!shape2.empty()) {
    text += ' ';
    text += dims(shape2);
  }
  text += " } }\n";
  text += layers;
  return std::make_unique<Net>(read_net_text(text, "layers.prototxt"), proto::TRAIN, Device::cpu(), 11, nullptr,
                               DType::f64);
}

// Gradient check of blob `top` w.r.t. the net's inputs x (and y) and all its learnable parameters.
void check_net_grad(Net& net, const std::string& top, const TensorList& fed) {
  std::map<std::string, Tensor> feed{{"x", fed[0]}};
  if (fed.size() > 1) feed["y"] = fed[1];
  testing::check_net_grad(net, feed, fed.size() > 1 ? std::vector<std::string>{"x", "y"} : std::vector<std::string>{"x"},
                          {top});
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST_CASE("ReLU, Sigmoid, TanH: the ops, and their gradients through a net") {
  Generator gen(1);
  Tensor x = random_input({3, 5}, gen);
  auto net = net_on({3, 5},
                    "layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"r\" relu_param { negative_slope: 0.125 } }\n"
                    "layer { name: \"s\" type: \"Sigmoid\" bottom: \"x\" top: \"s\" }\n"
                    "layer { name: \"t\" type: \"TanH\" bottom: \"x\" top: \"t\" }\n");
  auto blobs = net->forward({{"x", x}});
  check_close(blobs.at("r"), relu(x, 0.125));
  check_close(blobs.at("s"), sigmoid(x));
  check_close(blobs.at("t"), tanh(x));
  for (const char* top : {"r", "s", "t"}) check_net_grad(*net, top, {x});
}

TEST_CASE("Eltwise SUM with coeff, PROD and MAX") {
  Generator gen(2);
  Tensor x = random_input({3, 5}, gen), y = random_input({3, 5}, gen);
  auto net = net_on({3, 5},
                    "layer { name: \"sum\" type: \"Eltwise\" bottom: \"x\" bottom: \"y\" top: \"sum\" "
                    "eltwise_param { coeff: 2 coeff: -0.5 } }\n"
                    "layer { name: \"prod\" type: \"Eltwise\" bottom: \"x\" bottom: \"y\" bottom: \"x\" top: \"prod\" "
                    "eltwise_param { operation: PROD } }\n"
                    "layer { name: \"max\" type: \"Eltwise\" bottom: \"x\" bottom: \"y\" top: \"max\" "
                    "eltwise_param { operation: MAX } }\n",
                    {3, 5});
  auto blobs = net->forward({{"x", x}, {"y", y}});
  check_close(blobs.at("sum"), x * 2.0 - y * 0.5);
  check_close(blobs.at("prod"), x * y * x);
  auto vx = values(x), vy = values(y), vm = values(blobs.at("max"));
  for (size_t i = 0; i < vx.size(); ++i) CHECK(vm[i] == doctest::Approx(std::max(vx[i], vy[i])));
  for (const char* top : {"sum", "prod", "max"}) check_net_grad(*net, top, {x, y});

  auto bad = [](const std::string& layers, const Shape& s2) {
    try {
      net_on({3, 5}, layers, s2);
    } catch (const ParseError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK(bad("layer { name: \"e\" type: \"Eltwise\" bottom: \"x\" bottom: \"y\" top: \"e\" }\n", {3, 4}) ==
        "layers.prototxt:2: layer 'e' (Eltwise): bottoms must have one shape, got [3, 5] and [3, 4] (bottom 1)");
  CHECK(bad("layer { name: \"e\" type: \"Eltwise\" bottom: \"x\" bottom: \"y\" top: \"e\" eltwise_param { coeff: 1 } }\n",
            {3, 5}) == "layers.prototxt:2: layer 'e' (Eltwise): 1 coeff values for 2 bottoms (give one per bottom)");
}

TEST_CASE("Scale: learned gamma/beta over axis and num_axes, or a second bottom") {
  Generator gen(3);
  Tensor x = random_input({2, 3, 5}, gen);
  auto net = net_on({2, 3, 5},
                    "layer { name: \"c\" type: \"Scale\" bottom: \"x\" top: \"c\" scale_param { bias_term: true "
                    "filler { type: \"uniform\" min: -1 max: 1 } bias_filler { type: \"uniform\" } } }\n"
                    "layer { name: \"w\" type: \"Scale\" bottom: \"x\" top: \"w\" scale_param { axis: 1 num_axes: -1 "
                    "filler { type: \"gaussian\" } } }\n"
                    "layer { name: \"k\" type: \"Scale\" bottom: \"x\" top: \"k\" scale_param { num_axes: 0 "
                    "filler { type: \"constant\" value: 3 } } }\n"
                    "layer { name: \"b\" type: \"Scale\" bottom: \"x\" bottom: \"y\" top: \"b\" scale_param { axis: 0 } }\n",
                    {2, 3});
  CHECK(net->layer("c")->param(0).shape() == Shape{3});
  CHECK(net->layer("c")->param(1).shape() == Shape{3});
  CHECK(net->layer("w")->param(0).shape() == Shape{3, 5});
  CHECK(net->layer("k")->param(0).shape() == Shape{1});
  CHECK(net->layer("b")->params().empty());
  Tensor y = random_input({2, 3}, gen);
  auto blobs = net->forward({{"x", x}, {"y", y}});
  const Layer& c = *net->layer("c");
  check_close(blobs.at("c"), x * c.param(0).reshape({3, 1}) + c.param(1).reshape({3, 1}));
  check_close(blobs.at("w"), x * net->layer("w")->param(0));
  check_close(blobs.at("k"), x * 3.0);
  check_close(blobs.at("b"), x * y.reshape({2, 3, 1}));
  for (const char* top : {"c", "w", "k", "b"}) check_net_grad(*net, top, {x, y});
}

TEST_CASE("Flatten, Reshape, Split, Silence: views and gradients") {
  Generator gen(4);
  Tensor x = random_input({3, 5, 2}, gen);
  auto net = net_on({3, 5, 2},
                    "layer { name: \"f\" type: \"Flatten\" bottom: \"x\" top: \"f\" }\n"
                    "layer { name: \"r\" type: \"Reshape\" bottom: \"f\" top: \"r\" reshape_param { shape { dim: 5 dim: -1 } } }\n"
                    "layer { name: \"sp\" type: \"Split\" bottom: \"r\" top: \"a\" top: \"b\" }\n"
                    "layer { name: \"sum\" type: \"Eltwise\" bottom: \"a\" bottom: \"b\" top: \"sum\" }\n"
                    "layer { name: \"quiet\" type: \"Silence\" bottom: \"f\" }\n");
  auto blobs = net->forward({{"x", x}});
  CHECK(blobs.at("f").shape() == Shape{3, 10});
  CHECK(blobs.at("r").shape() == Shape{5, 6});
  CHECK(values(blobs.at("r")) == values(x));
  check_close(blobs.at("sum"), (x * 2.0).reshape({5, 6}));
  check_net_grad(*net, "sum", {x});  // Split's two uses: the gradient is doubled
}

TEST_CASE("EuclideanLoss: sum((a - b)^2) / (2N) and its gradient") {
  Generator gen(5);
  Tensor a = random_input({3, 5}, gen), b = random_input({3, 5}, gen);
  auto net = net_on({3, 5}, "layer { name: \"l\" type: \"EuclideanLoss\" bottom: \"x\" bottom: \"y\" top: \"l\" }\n", {3, 5});
  net->forward({{"x", a}, {"y", b}});
  auto va = values(a), vb = values(b);
  double expect = 0;
  for (size_t i = 0; i < va.size(); ++i) expect += (va[i] - vb[i]) * (va[i] - vb[i]);
  CHECK(net->loss().item() == doctest::Approx(expect / 6));
  CHECK(net->blob("l").shape() == Shape{});
  check_net_grad(*net, "l", {a, b});
}

// ---- fillers -----------------------------------------------------------------------------

namespace {
struct Stats {
  double mean = 0, var = 0, min = 1e300, max = -1e300;
};
Stats stats(const Tensor& t) {
  Stats s;
  auto v = t.to_vector<double>();
  for (double x : v) {
    s.mean += x;
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
  }
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.var += (x - s.mean) * (x - s.mean);
  s.var /= static_cast<double>(v.size());
  return s;
}
Tensor filled(const std::string& text, const Shape& shape, uint64_t seed = 1) {
  proto::FillerParameter f;
  parse_text(text, "filler", f);
  Tensor t = Tensor::empty(shape);
  Generator gen(seed);
  fill(t, f, gen, fan_in_of(shape), fan_out_of(shape));
  return t;
}
}  // namespace

TEST_CASE("fillers: statistics") {
  Shape w{64, 50, 3, 3};  // fan_in 450, fan_out 576
  Stats c = stats(filled("type: 'constant' value: 0.25", {7, 3}));
  CHECK(c.min == doctest::Approx(0.25));
  CHECK(c.max == doctest::Approx(0.25));
  Stats u = stats(filled("type: 'uniform' min: -2 max: 3", w));
  CHECK(u.min >= -2);
  CHECK(u.max < 3);
  CHECK(u.mean == doctest::Approx(0.5).epsilon(0.03));
  Stats g = stats(filled("type: 'gaussian' mean: 1 std: 0.5", w));
  CHECK(g.mean == doctest::Approx(1).epsilon(0.01));
  CHECK(std::sqrt(g.var) == doctest::Approx(0.5).epsilon(0.02));
  Stats x = stats(filled("type: 'xavier'", w));
  double bound = std::sqrt(3.0 / 450);
  CHECK(x.min >= -bound);
  CHECK(x.max <= bound);
  CHECK(x.var == doctest::Approx(bound * bound / 3).epsilon(0.03));
  Stats xo = stats(filled("type: 'xavier' variance_norm: FAN_OUT", w));
  CHECK(xo.max <= std::sqrt(3.0 / 576));
  CHECK(xo.max > std::sqrt(3.0 / 576) * 0.99);
  Stats m = stats(filled("type: 'msra' variance_norm: AVERAGE", w));
  CHECK(m.var == doctest::Approx(2.0 / 513).epsilon(0.03));
  Stats p = stats(filled("type: 'pytorch'", w));
  CHECK(p.max <= 1 / std::sqrt(450.0));
  CHECK(p.min >= -1 / std::sqrt(450.0));
  CHECK(p.var == doctest::Approx(1.0 / 450 / 3).epsilon(0.03));
  // sparse gaussian keeps about sparse/shape[0] of the elements.
  auto sv = filled("type: 'gaussian' sparse: 16", w).to_vector<float>();
  double nonzero = 0;
  for (float v : sv) nonzero += v != 0;
  CHECK(nonzero / static_cast<double>(sv.size()) == doctest::Approx(0.25).epsilon(0.05));
  // positive_unitball rows sum to 1.
  auto pu = filled("type: 'positive_unitball'", {3, 7}).to_vector<float>();
  for (int r = 0; r < 3; ++r) {
    double s = 0;
    for (int k = 0; k < 7; ++k) s += pu[r * 7 + k];
    CHECK(s == doctest::Approx(1));
  }
}

TEST_CASE("fillers: bilinear matches Caffe's upsampling kernel") {
  // K = 4 (factor 2): the 1-d tent is [0.25, 0.75, 0.75, 0.25].
  auto v = filled("type: 'bilinear'", {1, 1, 4, 4}).to_vector<float>();
  double tent[4] = {0.25, 0.75, 0.75, 0.25};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) CHECK(v[y * 4 + x] == doctest::Approx(tent[y] * tent[x]));
  // K = 5 (factor 3): [1/3, 2/3, 1, 2/3, 1/3], in every [K, K] slice.
  auto o = filled("type: 'bilinear'", {2, 1, 5, 5}).to_vector<float>();
  double odd[5] = {1 / 3.0, 2 / 3.0, 1, 2 / 3.0, 1 / 3.0};
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 5; ++x) CHECK(o[25 + y * 5 + x] == doctest::Approx(odd[y] * odd[x]));
  CHECK_THROWS_WITH_AS(filled("type: 'bilinear'", {2, 3, 4}),
                       "filler 'bilinear': expects a [C_out, C_in, K, K] weight, got [2, 3, 4]", OpError);
}

TEST_CASE("fillers: deterministic from the generator, and unknown types suggest") {
  for (const char* type : {"uniform", "gaussian", "xavier", "msra", "pytorch"}) {
    std::string text = std::string("type: '") + type + "'";
    CHECK(filled(text, {5, 7}, 9).to_vector<float>() == filled(text, {5, 7}, 9).to_vector<float>());
    CHECK(filled(text, {5, 7}, 9).to_vector<float>() != filled(text, {5, 7}, 10).to_vector<float>());
  }
  // Two fills from one generator differ (the generator advances).
  proto::FillerParameter f;
  f.set_type("gaussian");
  Generator gen(1);
  Tensor a = Tensor::empty({5}), b = Tensor::empty({5});
  fill(a, f, gen, 5, 5);
  fill(b, f, gen, 5, 5);
  CHECK(a.to_vector<float>() != b.to_vector<float>());
  CHECK_THROWS_WITH_AS(filled("type: 'xaiver'", {2, 2}),
                       "unknown filler type 'xaiver'; did you mean 'xavier'? (known: constant, uniform, gaussian, "
                       "positive_unitball, xavier, msra, bilinear, pytorch)",
                       OpError);
}

TEST_CASE("every registered layer type is documented in docs/layers.md") {
  // The registry is the source of truth: a new layer without a "## Type" section fails here.
  std::filesystem::path docs = mmfuse::testing::source_root() / "docs" / "layers.md";
  std::ifstream in(docs);
  REQUIRE_MESSAGE(in.good(), "cannot open ", docs.string());
  std::stringstream text;
  text << in.rdbuf();
  for (const auto& type : layer_types()) {
    if (type.rfind("Test", 0) == 0) continue;  // test-only layers registered by test files
    INFO("layer type ", type);
    std::string heading = "\n## ";
    heading += type;
    heading += '\n';
    CHECK(text.str().find(heading) != std::string::npos);
  }
}
