// Caffe's LRN, SigmoidCrossEntropyLoss and ContrastiveLoss: forward against a direct loop of
// Caffe's formula, against PyTorch's values where PyTorch has the layer (constants computed
// with torch 1.13 in float64 by the snippet quoted beside them), and gradient-checked.
#include <cmath>
#include <memory>

#include "core/net.h"
#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::check_close;

namespace {

// A float64 net: an Input layer with one top per shape ("a", "b", "c"), then `layers`.
std::unique_ptr<Net> net_with(const std::vector<Shape>& shapes, const std::string& layers) {
  std::string text = "layer { name: \"in\" type: \"Input\"";
  for (size_t i = 0; i < shapes.size(); ++i) text += std::string(" top: \"") + static_cast<char>('a' + i) + "\"";
  text += " input_param {";
  for (const Shape& s : shapes) {
    text += " shape {";
    for (int64_t d : s) text += " dim: " + std::to_string(d);
    text += " }";
  }
  text += " } }\n" + layers;
  return std::make_unique<Net>(read_net_text(text, "caffe.prototxt"), proto::TRAIN, Device::cpu(), 3, nullptr,
                               DType::f64);
}

// sin(scale * i + phase) * amplitude for flat index i: inputs the Python snippets rebuild.
Tensor wave(const Shape& shape, double scale, double phase, double amplitude, bool grad = true) {
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(scale * static_cast<double>(i) + phase) * amplitude;
  Tensor t = Tensor::from_vector(v, shape);
  if (grad) t.set_requires_grad(true);
  return t;
}

// Caffe's LRN, element by element.
std::vector<double> lrn_reference(const std::vector<double>& x, const Shape& s, int64_t n, double alpha, double beta,
                                  double k, bool across) {
  const int64_t C = s[1], H = s[2], W = s[3], half = (n - 1) / 2;
  auto at = [&](int64_t b, int64_t c, int64_t h, int64_t w) -> double {
    if (c < 0 || c >= C || h < 0 || h >= H || w < 0 || w >= W) return 0;
    return x[static_cast<size_t>(((b * C + c) * H + h) * W + w)];
  };
  std::vector<double> y(x.size());
  for (int64_t b = 0; b < s[0]; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          double sum = 0, scale;
          if (across) {
            for (int64_t j = c - half; j <= c + half; ++j) sum += at(b, j, h, w) * at(b, j, h, w);
            scale = k + alpha / static_cast<double>(n) * sum;
          } else {
            for (int64_t i = h - half; i <= h + half; ++i)
              for (int64_t j = w - half; j <= w + half; ++j) sum += at(b, c, i, j) * at(b, c, i, j);
            scale = 1 + alpha / static_cast<double>(n * n) * sum;
          }
          y[static_cast<size_t>(((b * C + c) * H + h) * W + w)] = at(b, c, h, w) * std::pow(scale, -beta);
        }
  return y;
}

void check_grad(Net& net, const std::string& top, const TensorList& fed, size_t wrt) {
  std::map<std::string, Tensor> feed;
  std::vector<std::string> names;
  for (size_t i = 0; i < fed.size(); ++i) {
    std::string name(1, static_cast<char>('a' + i));
    feed[name] = fed[i];
    if (i < wrt) names.push_back(name);
  }
  testing::check_net_grad(net, feed, names, {top});
}

}  // namespace

TEST_CASE("LRN across channels: Caffe's formula, torch.nn.LocalResponseNorm's values, gradient") {
  const Shape s{2, 7, 3, 4};
  Tensor x = wave(s, 0.37, 0.1, 2);
  auto net = net_with({s}, "layer { name: \"n\" type: \"LRN\" bottom: \"a\" top: \"y\" "
                           "lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 k: 2 } }\n");
  net->forward({{"a", x}});
  std::vector<double> y = net->blob("y").to_vector<double>();
  check_close(y, lrn_reference(x.to_vector<double>(), s, 5, 0.5, 0.75, 2, true), 1e-12);
  // x = torch.tensor([math.sin(0.37*i+0.1)*2 for i in range(168)]).reshape(2,7,3,4)
  // y = torch.nn.LocalResponseNorm(5, alpha=0.5, beta=0.75, k=2.0)(x).flatten()
  CHECK(y[0] == doctest::Approx(0.1014556120505271).epsilon(1e-12));
  CHECK(y[13] == doctest::Approx(-0.9005607245478666).epsilon(1e-12));
  CHECK(y[50] == doctest::Approx(-0.21876110639607033).epsilon(1e-12));
  CHECK(y[101] == doctest::Approx(-0.20319737703261756).epsilon(1e-12));
  CHECK(y[167] == doctest::Approx(-0.7974014142129662).epsilon(1e-12));
  double total = 0;
  for (double v : y) total += v;
  CHECK(total == doctest::Approx(0.7835695475317077).epsilon(1e-12));  // y.sum()
  auto small = net_with({{2, 4, 2, 3}}, "layer { name: \"n\" type: \"LRN\" bottom: \"a\" top: \"y\" "
                                        "lrn_param { local_size: 3 alpha: 0.8 beta: 0.75 k: 1.5 } }\n");
  check_grad(*small, "y", {wave({2, 4, 2, 3}, 0.61, 0.3, 1.5)}, 1);
}

TEST_CASE("LRN within channel: 1 + alpha/n^2 * the n x n window (Caffe ignores k), gradient") {
  const Shape s{2, 3, 5, 4};
  Tensor x = wave(s, 0.29, 0.7, 1.7);
  auto net = net_with({s}, "layer { name: \"n\" type: \"LRN\" bottom: \"a\" top: \"y\" lrn_param { local_size: 3 "
                           "alpha: 0.9 beta: 0.6 k: 7 norm_region: WITHIN_CHANNEL } }\n");
  net->forward({{"a", x}});
  // The proto's alpha and beta are float32: the reference takes them as stored.
  check_close(net->blob("y").to_vector<double>(), lrn_reference(x.to_vector<double>(), s, 3, double{0.9f}, double{0.6f}, 7, false),
              1e-12);
  check_grad(*net, "y", {wave(s, 0.41, 0.2, 1.2)}, 1);
}

TEST_CASE("LRN refuses what Caffe refuses: an even local_size, a non-4-d bottom") {
  auto error = [](const std::vector<Shape>& shapes, const std::string& layers) {
    try {
      net_with(shapes, layers);
    } catch (const ParseError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error({{1, 4, 2, 2}}, "layer { name: \"n\" type: \"LRN\" bottom: \"a\" top: \"y\" lrn_param { local_size: 4 } }")
            .find("layer 'n' (LRN): local_size must be odd, got 4") != std::string::npos);
  CHECK(error({{1, 4}}, "layer { name: \"n\" type: \"LRN\" bottom: \"a\" top: \"y\" }")
            .find("bottom must be [N, C, H, W], got [1, 4]") != std::string::npos);
}

TEST_CASE("SigmoidCrossEntropyLoss: torch's binary_cross_entropy_with_logits, Caffe's normalisations") {
  const Shape s{3, 5};
  Tensor x = wave(s, 0.7, 0, 4);
  std::vector<double> targets;
  for (int i = 0; i < 15; ++i) targets.push_back((i % 3) / 2.0);
  Tensor t = Tensor::from_vector(targets, s);
  auto loss_with = [&](const std::string& loss_param) {
    auto net = net_with({s, s}, "layer { name: \"l\" type: \"SigmoidCrossEntropyLoss\" bottom: \"a\" bottom: \"b\" "
                                "top: \"l\" " + loss_param + " }\n");
    net->forward({{"a", x}, {"b", t}});
    return net->loss().item();
  };
  // xs = torch.tensor([math.sin(0.7*i)*4 for i in range(15)]).reshape(3,5)
  // ts = torch.tensor([(i%3)/2.0 for i in range(15)]).reshape(3,5)
  // F.binary_cross_entropy_with_logits(xs, ts) (the mean over the 15 elements)
  const double torch_mean = 1.3892539898351464;
  CHECK(loss_with("loss_param { normalization: FULL }") == doctest::Approx(torch_mean).epsilon(1e-12));
  CHECK(loss_with("") == doctest::Approx(torch_mean * 15 / 3).epsilon(1e-12));  // BATCH_SIZE: Caffe's default here
  CHECK(loss_with("loss_param { normalization: NONE }") == doctest::Approx(torch_mean * 15).epsilon(1e-12));
  // Its gradient at the first elements, divided by 15 as the mean is: torch's xs.grad.
  {
    auto net = net_with({s, s}, "layer { name: \"l\" type: \"SigmoidCrossEntropyLoss\" bottom: \"a\" bottom: \"b\" "
                                "top: \"l\" loss_param { normalization: FULL } }\n");
    net->forward({{"a", x}, {"b", t}});
    net->loss().backward();
    std::vector<double> g = x.grad().to_vector<double>();
    CHECK(g[0] == doctest::Approx(0.03333333333333333).epsilon(1e-12));
    CHECK(g[1] == doctest::Approx(0.028623873635512553).epsilon(1e-12));
    CHECK(g[2] == doctest::Approx(-0.001269570851334123).epsilon(1e-12));
    check_grad(*net, "l", {wave(s, 0.9, 0.4, 3), t}, 1);
  }
  // At x = 0 the loss is log 2 and its gradient sigmoid(0) - t (softplus is smooth there).
  {
    auto net = net_with({{1, 2}, {1, 2}}, "layer { name: \"l\" type: \"SigmoidCrossEntropyLoss\" bottom: \"a\" "
                                          "bottom: \"b\" top: \"l\" }\n");
    Tensor zero = Tensor::zeros({1, 2}, DType::f64);
    zero.set_requires_grad(true);
    net->forward({{"a", zero}, {"b", Tensor::from_vector<double>({0, 1}, {1, 2})}});
    CHECK(net->loss().item() == doctest::Approx(2 * std::log(2.0)));
    net->loss().backward();
    check_close(zero.grad().to_vector<double>(), {0.5, -0.5}, 1e-12);
  }
  // ignore_label: those elements add nothing; VALID divides by the others.
  std::vector<double> with_ignored = targets;
  with_ignored[1] = with_ignored[7] = -1;
  Tensor ti = Tensor::from_vector(with_ignored, s);
  auto net = net_with({s, s}, "layer { name: \"l\" type: \"SigmoidCrossEntropyLoss\" bottom: \"a\" bottom: \"b\" "
                              "top: \"l\" loss_param { ignore_label: -1 normalization: VALID } }\n");
  net->forward({{"a", x}, {"b", ti}});
  std::vector<double> xv = x.to_vector<double>();
  double expect = 0;
  for (size_t i = 0; i < 15; ++i)
    if (i != 1 && i != 7)
      expect += std::max(xv[i], 0.0) - xv[i] * with_ignored[i] + std::log1p(std::exp(-std::abs(xv[i])));
  CHECK(net->loss().item() == doctest::Approx(expect / 13).epsilon(1e-12));
}

TEST_CASE("ContrastiveLoss: Caffe's margin and legacy_version, gradient") {
  // Two pairs of 2-d points: a similar pair at distance 5 (3-4-5) and a dissimilar pair at
  // distance 0.6 with margin 2: loss = (25 + (2 - 0.6)^2) / (2 * 2) = (25 + 1.96) / 4.
  Tensor a = Tensor::from_vector<double>({0, 0, 1, 1}, {2, 2});
  Tensor b = Tensor::from_vector<double>({3, 4, 1, 1.6}, {2, 2});
  Tensor y = Tensor::from_vector<double>({1, 0}, {2});
  auto loss_with = [&](const std::string& param, const Tensor& label) {
    auto net = net_with({{2, 2}, {2, 2}, {2}}, "layer { name: \"l\" type: \"ContrastiveLoss\" bottom: \"a\" "
                                               "bottom: \"b\" bottom: \"c\" top: \"l\" " + param + " }\n");
    net->forward({{"a", a}, {"b", b}, {"c", label}});
    return net->loss().item();
  };
  CHECK(loss_with("contrastive_loss_param { margin: 2 }", y) == doctest::Approx((25 + 1.96) / 4));
  // legacy_version: max(margin - d^2, 0) = 2 - 0.36 for the dissimilar pair.
  CHECK(loss_with("contrastive_loss_param { margin: 2 legacy_version: true }", y) == doctest::Approx((25 + 1.64) / 4));
  // A dissimilar pair beyond the margin costs nothing; labels are truncated as Caffe's int cast.
  CHECK(loss_with("contrastive_loss_param { margin: 2 }", Tensor::from_vector<double>({0.4, 0}, {2})) ==
        doctest::Approx(1.96 / 4));
  // Gradient of random pairs (with y fixed, not differentiated), and the identical-pair case.
  Generator gen(8);
  auto net = net_with({{4, 3, 1, 1}, {4, 3, 1, 1}, {4}},
                      "layer { name: \"l\" type: \"ContrastiveLoss\" bottom: \"a\" bottom: \"b\" bottom: \"c\" top: \"l\" "
                      "contrastive_loss_param { margin: 1.5 } }\n");
  check_grad(*net, "l",
             {testing::random_input({4, 3, 1, 1}, gen), testing::random_input({4, 3, 1, 1}, gen),
              Tensor::from_vector<double>({1, 0, 0, 1}, {4})},
             2);
  Tensor same = Tensor::from_vector<double>({0.5, -0.5, 2}, {1, 3, 1, 1});
  same.set_requires_grad(true);
  auto one = net_with({{1, 3, 1, 1}, {1, 3, 1, 1}, {1}},
                      "layer { name: \"l\" type: \"ContrastiveLoss\" bottom: \"a\" bottom: \"b\" bottom: \"c\" top: \"l\" }\n");
  one->forward({{"a", same}, {"b", same.detach()}, {"c", Tensor::from_vector<double>({0}, {1})}});
  CHECK(one->loss().item() == doctest::Approx(0.5).epsilon(1e-5));  // margin 1, d = 0: 1 / 2
  one->loss().backward();
  for (double g : same.grad().to_vector<double>()) CHECK(std::isfinite(g));
}
