// Fusion ops: the semantics the multimodal-fusion issue pins (which channels CS exchanges,
// PS directions on a hand-made map, the ensemble's weights), errors, and gradient checks for
// every option at odd sizes. None of these ops owns a parameter: every tensor they use is an
// argument (the ensemble's alpha belongs to its layer).
#include <cmath>
#include <functional>

#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::random_input;

namespace {

// A float64 tensor whose element at flat index i is f(i).
Tensor iota_like(const Shape& shape, const std::function<double(int64_t)>& f = [](int64_t i) { return double(i); }) {
  std::vector<double> v(shape_numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = f(static_cast<int64_t>(i));
  return Tensor::from_vector<double>(v, shape);
}

}  // namespace

// ---- channel_shuffle ----------------------------------------------------------------------

TEST_CASE("channel_shuffle keeps 4*floor(C/5) channels at keep_ratio 0.8 for every C") {
  for (int64_t c = 1; c <= 2048; ++c) {
    INFO("C = " << c);
    REQUIRE(channel_shuffle_kept(c, 0.8) == 4 * (c / 5));
  }
  CHECK(channel_shuffle_kept(64, 0.8) == 48);
  CHECK(channel_shuffle_kept(512, 0.8) == 408);
  // Other ratios: C cut into q groups of floor(C/q), p of them kept.
  CHECK(channel_shuffle_kept(64, 0.5) == 32);
  CHECK(channel_shuffle_kept(65, 0.5) == 32);
  CHECK(channel_shuffle_kept(64, 0.75) == 48);
  CHECK(channel_shuffle_kept(64, 0.7) == 42);
  CHECK(channel_shuffle_kept(64, 1.0) == 64);
  CHECK(channel_shuffle_kept(64, 0.0) == 0);
  CHECK(channel_shuffle_kept(64, 2.0 / 3) == 42);
  // Ratios that arrive as single-precision floats (prototxt) mean the same fraction.
  CHECK(channel_shuffle_kept(64, static_cast<double>(0.8f)) == 48);
  CHECK(channel_shuffle_kept(64, static_cast<double>(0.7f)) == 42);
  CHECK_THROWS_WITH_AS(channel_shuffle_kept(64, 1.5), "channel_shuffle: keep_ratio 1.5 is outside [0, 1]", OpError);
  CHECK_THROWS_AS(channel_shuffle_kept(64, std::nan("")), OpError);
  CHECK_THROWS_AS(channel_shuffle_kept(64, 1 / std::sqrt(2.0)), OpError);
}

TEST_CASE("channel_shuffle by hand: M = 2 and cyclic M = 3, C = 5") {
  // One sample per modality, one pixel: modality m holds 10*m + c in channel c; k = 4.
  Tensor x2 = iota_like({2, 5, 1}, [](int64_t i) { return 10.0 * (i / 5) + i % 5; });
  CHECK(channel_shuffle(x2, 2).to_vector<double>() == std::vector<double>{0, 1, 2, 3, 14, 10, 11, 12, 13, 4});
  CHECK(channel_shuffle(x2, 2, 0.8, {0}).to_vector<double>() ==
        std::vector<double>{0, 1, 2, 3, 14, 10, 11, 12, 13, 14});
  Tensor x3 = iota_like({3, 5, 1}, [](int64_t i) { return 10.0 * (i / 5) + i % 5; });
  CHECK(channel_shuffle(x3, 3).to_vector<double>() ==
        std::vector<double>{0, 1, 2, 3, 14, 10, 11, 12, 13, 24, 20, 21, 22, 23, 4});
  CHECK(channel_shuffle(x3, 3, 0.8, {1}).to_vector<double>() ==
        std::vector<double>{0, 1, 2, 3, 4, 10, 11, 12, 13, 24, 20, 21, 22, 23, 24});
  // M = 1 takes from itself: the identity.
  CHECK(channel_shuffle(x3, 1).to_vector<double>() == x3.to_vector<double>());
}

TEST_CASE("channel_shuffle exchanges exactly the last C - 4*floor(C/5) channels (C = 64..512)") {
  const std::vector<std::pair<int64_t, int64_t>> cases = {{64, 16}, {128, 28}, {256, 52}, {512, 104}};
  for (auto [channels, exchanged] : cases) {
    for (int64_t modalities : {2, 3}) {
      int64_t batch = 2, inner = 3, rows = modalities * batch;
      Tensor x = iota_like({rows, channels, inner});  // every element distinct
      auto in = x.to_vector<double>();
      for (bool only_first : {false, true}) {
        std::vector<int64_t> receivers = only_first ? std::vector<int64_t>{0} : std::vector<int64_t>{};
        auto out = channel_shuffle(x, modalities, 0.8, receivers).to_vector<double>();
        INFO("C = " << channels << ", M = " << modalities << ", receivers {0} only: " << only_first);
        for (int64_t b = 0; b < rows; ++b) {
          int64_t m = b / batch, n = b % batch;
          bool receives = !only_first || m == 0;
          // The channels where row b differs from its input: exactly [C - exchanged, C) or none.
          std::vector<int64_t> changed;
          for (int64_t c = 0; c < channels; ++c) {
            bool differs = false;
            for (int64_t s = 0; s < inner; ++s) {
              int64_t i = (b * channels + c) * inner + s;
              int64_t giver = ((m + 1) % modalities) * batch + n;
              double want = receives && c >= channels - exchanged ? in[(giver * channels + c) * inner + s] : in[i];
              CHECK(out[i] == want);
              differs |= out[i] != in[i];
            }
            if (differs) changed.push_back(c);
          }
          CHECK(changed.size() == static_cast<size_t>(receives ? exchanged : 0));
          if (receives) {
            CHECK(changed.front() == channels - exchanged);
            CHECK(changed.back() == channels - 1);
          }
        }
      }
    }
  }
}

TEST_CASE("channel_shuffle rejects bad arguments") {
  Tensor x = Tensor::zeros({6, 5, 2});
  CHECK_THROWS_WITH_AS(channel_shuffle(x, 4), "channel_shuffle: batch of [6, 5, 2] is not divisible by modalities = 4",
                       OpError);
  CHECK_THROWS_WITH_AS(channel_shuffle(x, 0), "channel_shuffle: modalities must be >= 1, got 0", OpError);
  CHECK_THROWS_WITH_AS(channel_shuffle(x, 2, 0.8, {2}), "channel_shuffle: receiver 2 out of range for modalities = 2",
                       OpError);
  CHECK_THROWS_WITH_AS(channel_shuffle(x, 2, 0.8, {1, 1}), "channel_shuffle: receiver 1 listed twice", OpError);
  CHECK_THROWS_WITH_AS(channel_shuffle(Tensor::zeros({6}), 2),
                       "channel_shuffle: expects a modality-stacked [M*N, C, ...] input, got [6]",
                       OpError);
  CHECK_THROWS_AS(channel_shuffle(Tensor::zeros({6, 5}, DType::i32), 2), OpError);
}

// ---- pixel_shift_add ----------------------------------------------------------------------

namespace {

// Independent reference: the content of channel group q moves by `shift` * 2^(q/4) pixels
// down, right, left, up for q mod 4 = 0..3.
double shifted_value(const std::vector<double>& a, int64_t row, int64_t c, int64_t i, int64_t j, int64_t channels,
                     int64_t height, int64_t width, int64_t groups, int64_t shift) {
  int64_t g = channels / (groups + 1);
  if (c >= groups * g) return 0;
  int64_t q = c / g, dist = shift * (int64_t{1} << (q / 4));
  int64_t si = i, sj = j;
  switch (q % 4) {
    case 0: si = i - dist; break;  // down: the value at (i, j) came from the row above
    case 1: sj = j - dist; break;  // right
    case 2: sj = j + dist; break;  // left
    case 3: si = i + dist; break;  // up
  }
  if (si < 0 || si >= height || sj < 0 || sj >= width) return 0;
  return a[((row * channels + c) * height + si) * width + sj];
}

}  // namespace

TEST_CASE("pixel_shift_add directions on a hand-made map (C = 5, H = 3, W = 4)") {
  // Modality 1 of a is the map 1..12 in every channel; modality 0 is 100 + that map.
  // y is 1000 * (row + 1) everywhere, so top = y + the shifted map of the other modality.
  Tensor a = iota_like({2, 5, 3, 4}, [](int64_t i) { return (i / 60 == 0 ? 100.0 : 0.0) + 1 + i % 12; });
  Tensor y = iota_like({2, 5, 3, 4}, [](int64_t i) { return 1000.0 * (1 + i / 60); });
  auto top = pixel_shift_add(y, a, 2).to_vector<double>();
  const std::vector<std::vector<double>> expected = {
      {0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8},     // group 0: down, top row zero
      {0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11},   // group 1: right, left column zero
      {2, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 0},  // group 2: left, right column zero
      {5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 0},  // group 3: up, bottom row zero
      {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},     // remainder channel 4: nothing
  };
  for (int64_t c = 0; c < 5; ++c)
    for (int64_t p = 0; p < 12; ++p) {
      INFO("channel " << c << ", pixel " << p);
      CHECK(top[c * 12 + p] == 1000 + expected[c][p]);  // modality 0 gets modality 1's map
      double from0 = expected[c][p] == 0 ? 0 : 100 + expected[c][p];
      CHECK(top[60 + c * 12 + p] == 2000 + from0);  // modality 1 gets modality 0's
    }
  // shift = 2: down by two rows.
  auto top2 = pixel_shift_add(y, a, 2, 4, 2).to_vector<double>();
  const std::vector<double> down2 = {0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  for (int64_t p = 0; p < 12; ++p) CHECK(top2[p] == 1000 + down2[p]);
  // receivers {0}: modality 1 passes y through untouched.
  auto one_way = pixel_shift_add(y, a, 2, 4, 1, {0}).to_vector<double>();
  for (int64_t i = 0; i < 60; ++i) CHECK(one_way[i] == top[i]);
  for (int64_t i = 60; i < 120; ++i) CHECK(one_way[i] == 2000);
}

TEST_CASE("pixel_shift_add against a naive loop: C = 10, cyclic M = 3, groups > 4") {
  struct Case {
    int64_t modalities, batch, channels, height, width, groups, shift;
    std::vector<int64_t> receivers;
  };
  const std::vector<Case> cases = {
      {2, 1, 10, 3, 4, 4, 1, {}}, {3, 2, 10, 3, 4, 4, 1, {}}, {3, 1, 11, 5, 3, 4, 2, {2}},
      {2, 1, 12, 5, 5, 5, 1, {}}, {2, 1, 13, 4, 7, 2, 3, {1}}, {2, 2, 3, 3, 3, 4, 1, {}},  // C = 3: g = 0
  };
  Generator gen(7);
  for (const Case& k : cases) {
    INFO("M " << k.modalities << " C " << k.channels << " groups " << k.groups << " shift " << k.shift);
    Shape shape = {k.modalities * k.batch, k.channels, k.height, k.width};
    Tensor y = Tensor::rand(shape, gen, -1, 1, DType::f64), a = Tensor::rand(shape, gen, -1, 1, DType::f64);
    auto top = pixel_shift_add(y, a, k.modalities, k.groups, k.shift, k.receivers).to_vector<double>();
    auto yv = y.to_vector<double>(), av = a.to_vector<double>();
    int64_t idx = 0;
    for (int64_t b = 0; b < shape[0]; ++b) {
      int64_t m = b / k.batch, giver = ((m + 1) % k.modalities) * k.batch + b % k.batch;
      bool receives = k.receivers.empty() || std::find(k.receivers.begin(), k.receivers.end(), m) != k.receivers.end();
      for (int64_t c = 0; c < k.channels; ++c)
        for (int64_t i = 0; i < k.height; ++i)
          for (int64_t j = 0; j < k.width; ++j, ++idx) {
            double s = receives ? shifted_value(av, giver, c, i, j, k.channels, k.height, k.width, k.groups, k.shift) : 0;
            CHECK(top[idx] == doctest::Approx(yv[idx] + s).epsilon(1e-15));
          }
    }
  }
  // groups = 5, C = 12 (g = 2): group 4 (channels 8, 9) moves down by 2 * shift.
  Tensor a = iota_like({2, 12, 3, 1}, [](int64_t i) { return 1.0 + i % 3; });
  auto top = pixel_shift_add(Tensor::zeros({2, 12, 3, 1}, DType::f64), a, 2, 5, 1).to_vector<double>();
  CHECK(std::vector<double>(top.begin() + 24, top.begin() + 30) == std::vector<double>{0, 0, 1, 0, 0, 1});
}

TEST_CASE("pixel_shift_add rejects bad arguments") {
  Tensor y = Tensor::zeros({4, 5, 3, 3});
  CHECK_THROWS_WITH_AS(pixel_shift_add(y, Tensor::zeros({4, 5, 3, 2}), 2),
                       "pixel_shift_add: y [4, 5, 3, 3] and a [4, 5, 3, 2] must have the same shape", OpError);
  CHECK_THROWS_WITH_AS(pixel_shift_add(Tensor::zeros({4, 5, 9}), Tensor::zeros({4, 5, 9}), 2),
                       "pixel_shift_add: y must be 4-d [M*N, C, H, W], got [4, 5, 9]", OpError);
  CHECK_THROWS_WITH_AS(pixel_shift_add(y, y, 3), "pixel_shift_add: batch of [4, 5, 3, 3] is not divisible by modalities = 3",
                       OpError);
  CHECK_THROWS_WITH_AS(pixel_shift_add(y, y, 2, 0), "pixel_shift_add: groups must be in [1, 32], got 0", OpError);
  CHECK_THROWS_WITH_AS(pixel_shift_add(y, y, 2, 4, -1), "pixel_shift_add: shift must be >= 0, got -1", OpError);
  CHECK_THROWS_WITH_AS(pixel_shift_add(y, y, 2, 4, 1, {-1}), "pixel_shift_add: receiver -1 out of range for modalities = 2",
                       OpError);
  CHECK_THROWS_AS(pixel_shift_add(y, Tensor::zeros({4, 5, 3, 3}, DType::f64), 2), OpError);
}

// ---- channel_gate -------------------------------------------------------------------------

TEST_CASE("channel_gate by hand: a vector and a 4-d map") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor e = Tensor::from_vector<double>({0, 1, -1, 2, 0, -2}, {2, 3});
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  auto out = channel_gate(x, e, 2).to_vector<double>();
  const std::vector<double> ev = {0, 1, -1, 2, 0, -2};
  for (int64_t i = 0; i < 6; ++i) CHECK(out[i] == doctest::Approx(2 * sig(ev[i]) * (i + 1)));
  CHECK(out[0] == doctest::Approx(1));  // sigmoid(0) * 2 = 1: the identity gate
  CHECK(channel_gate(x, Tensor::zeros({2, 3}, DType::f64), 2).to_vector<double>() == x.to_vector<double>());
  // [2, 3, 2, 2]: the gate of (n, c) scales all four pixels.
  Tensor x4 = iota_like({2, 3, 2, 2});
  auto out4 = channel_gate(x4, e, 1).to_vector<double>();
  for (int64_t i = 0; i < 24; ++i) CHECK(out4[i] == doctest::Approx(sig(ev[i / 4]) * i));
}

TEST_CASE("channel_gate rejects bad arguments") {
  Tensor x = Tensor::zeros({2, 3, 4});
  CHECK_THROWS_WITH_AS(channel_gate(x, Tensor::zeros({2, 4}), 2),
                       "channel_gate: e [2, 4] must be [N, C] = [2, 3] for x [2, 3, 4]", OpError);
  CHECK_THROWS_WITH_AS(channel_gate(Tensor::zeros({3}), Tensor::zeros({3}), 2), "channel_gate: x must be [N, C, ...], got [3]",
                       OpError);
  CHECK_THROWS_WITH_AS(channel_gate(x, Tensor::zeros({2, 3}), 0), "channel_gate: gate_scale must be > 0, got 0", OpError);
  CHECK_THROWS_AS(channel_gate(x, Tensor::zeros({2, 3}, DType::f64), 2), OpError);
}

// ---- modality_ensemble --------------------------------------------------------------------

TEST_CASE("modality_ensemble by hand, and its weights sum to one") {
  // alpha = [0, ln 3]: weights 1/4 and 3/4.
  Tensor logits = Tensor::from_vector<double>({4, 8, 0, 4}, {2, 2});
  Tensor alpha = Tensor::from_vector<double>({0, std::log(3.0)}, {2});
  auto out = modality_ensemble(logits, alpha, 2).to_vector<double>();
  CHECK(out[0] == doctest::Approx(1));
  CHECK(out[1] == doctest::Approx(5));
  CHECK(modality_ensemble(logits, alpha, 2).shape() == Shape{1, 2});
  // Identical logits in every modality: the ensemble equals them, whatever alpha.
  Generator gen(3);
  Tensor one = Tensor::rand({2, 3, 5}, gen, -4, 4, DType::f64);
  Tensor stacked = modality_stack({one, one, one});
  Tensor alpha3 = Tensor::from_vector<double>({0.3, -2, 5}, {3});
  auto ens = modality_ensemble(stacked, alpha3, 3).to_vector<double>();
  auto ref = one.to_vector<double>();
  for (size_t i = 0; i < ref.size(); ++i) CHECK(ens[i] == doctest::Approx(ref[i]).epsilon(1e-12));
}

TEST_CASE("modality_ensemble: with detach only alpha gets a gradient, without both do") {
  Generator gen(4);
  for (bool detach : {true, false}) {
    INFO("detach " << detach);
    Tensor logits = Tensor::rand({6, 5}, gen, -1, 1, DType::f64).set_requires_grad();
    Tensor alpha = Tensor::ones({3}, DType::f64).set_requires_grad();
    // Through an op in front, so that the detach must also cut the logits' history.
    Tensor scaled = logits * 2.0;
    modality_ensemble(scaled, alpha, 3, detach).backward(Tensor::ones({2, 5}, DType::f64));
    REQUIRE(alpha.grad().defined());
    CHECK(alpha.grad().to_vector<double>() != std::vector<double>{0, 0, 0});
    if (detach) {
      CHECK_FALSE(logits.grad().defined());
    } else {
      REQUIRE(logits.grad().defined());
      // d/dlogits = 2 * softmax(ones) = 2/3 everywhere.
      for (double g : logits.grad().to_vector<double>()) CHECK(g == doctest::Approx(2.0 / 3));
    }
  }
}

TEST_CASE("modality_ensemble rejects bad arguments") {
  Tensor logits = Tensor::zeros({6, 5});
  CHECK_THROWS_WITH_AS(modality_ensemble(logits, Tensor::ones({2}), 3),
                       "modality_ensemble: alpha [2] must be [3] (one weight per modality)", OpError);
  CHECK_THROWS_WITH_AS(modality_ensemble(logits, Tensor::ones({4}), 4),
                       "modality_ensemble: batch of [6, 5] is not divisible by modalities = 4", OpError);
  CHECK_THROWS_AS(modality_ensemble(logits, Tensor::ones({3}, DType::f64), 3), OpError);
}

// ---- modality_stack / split / tile --------------------------------------------------------

TEST_CASE("modality_stack, modality_split and modality_tile by hand") {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector<float>({5, 6, 7, 8}, {2, 2});
  Tensor s = modality_stack({a, b});
  CHECK(s.shape() == Shape{4, 2});
  CHECK(s.to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8});
  TensorList parts = modality_split(s, 2);
  REQUIRE(parts.size() == 2);
  CHECK(parts[1].shape() == Shape{2, 2});
  CHECK(parts[1].to_vector<float>() == std::vector<float>{5, 6, 7, 8});
  CHECK(parts[1].storage() == s.storage());  // a view, no copy
  Tensor label = Tensor::from_vector<int32_t>({3, 1, 4}, {3});
  Tensor tiled = modality_tile(label, 3);
  CHECK(tiled.dtype() == DType::i32);
  CHECK(tiled.to_vector<int32_t>() == std::vector<int32_t>{3, 1, 4, 3, 1, 4, 3, 1, 4});
  CHECK_THROWS_WITH_AS(modality_stack({a, Tensor::zeros({3, 2})}),
                       "modality_stack: modality 1 is [3, 2] float32 cpu, modality 0 is [2, 2] float32 cpu (all must match)",
                       OpError);
  CHECK_THROWS_WITH_AS(modality_stack({}), "modality_stack: needs at least one tensor", OpError);
  CHECK_THROWS_WITH_AS(modality_split(s, 3), "modality_split: batch of [4, 2] is not divisible by modalities = 3", OpError);
  CHECK_THROWS_WITH_AS(modality_tile(label, 0), "modality_tile: modalities must be >= 1, got 0", OpError);
}

TEST_CASE("gradients of modality_split and modality_tile") {
  Generator gen(16);
  CHECK_GRAD([](const TensorList& t) { return modality_split(t[0], 3)[1]; }, {random_input({6, 5}, gen)});
  CHECK_GRAD([](const TensorList& t) { return modality_tile(t[0], 3); }, {random_input({3, 5}, gen)});
}

TEST_CASE("fusion kernels on sizes that take the parallel path, in float32") {
  Generator gen(17);
  // pixel_shift_add [2*2, 64, 17, 19] against the naive loop.
  Shape shape = {4, 64, 17, 19};
  Tensor y = Tensor::rand(shape, gen, -1, 1), a = Tensor::rand(shape, gen, -1, 1);
  auto top = pixel_shift_add(y, a, 2).to_vector<double>();
  auto yv = y.to_vector<double>(), av = a.to_vector<double>();
  int64_t idx = 0, bad = 0;
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t c = 0; c < 64; ++c)
      for (int64_t i = 0; i < 17; ++i)
        for (int64_t j = 0; j < 19; ++j, ++idx) {
          double want = yv[idx] + shifted_value(av, (b + 2) % 4, c, i, j, 64, 17, 19, 4, 1);
          bad += std::abs(top[idx] - want) > 1e-6;
        }
  CHECK(bad == 0);
  // channel_shuffle: rows of modality 0 take channels [48, 64) from modality 1.
  auto cs = channel_shuffle(a, 2).to_vector<double>();
  bad = 0;
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t c = 0; c < 64; ++c)
      for (int64_t p = 0; p < 17 * 19; ++p) {
        int64_t src = c < 48 ? b : (b + 2) % 4;
        bad += cs[(b * 64 + c) * 323 + p] != av[(src * 64 + c) * 323 + p];
      }
  CHECK(bad == 0);
  // modality_ensemble's alpha gradient summed over 2 * 64 * 17 * 19 = 41344 elements per modality.
  Tensor alpha = Tensor::from_vector<float>({0.5f, -0.5f}, {2}).set_requires_grad();
  Tensor dtop = Tensor::rand({2, 64, 17, 19}, gen, -1, 1);
  modality_ensemble(a, alpha, 2).backward(dtop);
  auto dv = dtop.to_vector<double>();
  double w0 = 1 / (1 + std::exp(-1.0)), dw[2] = {0, 0};
  int64_t slice = shape_numel({2, 64, 17, 19});
  for (int64_t m = 0; m < 2; ++m)
    for (int64_t i = 0; i < slice; ++i) dw[m] += dv[i] * av[m * slice + i];
  double mean = w0 * dw[0] + (1 - w0) * dw[1];
  auto da = alpha.grad().to_vector<double>();
  CHECK(da[0] == doctest::Approx(w0 * (dw[0] - mean)).epsilon(1e-5));
  CHECK(da[1] == doctest::Approx((1 - w0) * (dw[1] - mean)).epsilon(1e-5));
}

// The finite-difference gradient checks of the family: its op-case table (tests/op_cases/fusion.cpp).
TEST_CASE("gradcheck: the fusion table") { CHECK(testing::check_gradient_cases(testing::fusion_cases()) > 0); }
