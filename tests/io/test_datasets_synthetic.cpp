// The synthetic RGB-D source: determinism, class balance, and the property the fusion demo rests
// on -- a per-pixel classifier needs both modalities.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <vector>

#include "base/error.h"
#include "datasets/synthetic_rgbd.h"
#include "doctest/doctest.h"

using namespace mmfuse::datasets;

TEST_CASE("synthetic RGB-D: deterministic from (seed, index), independent of order") {
  SyntheticRgbdSpec spec;
  SyntheticRgbdSample a = make_synthetic_rgbd(spec, 7, 3);
  make_synthetic_rgbd(spec, 7, 0);  // making other samples in between changes nothing
  SyntheticRgbdSample b = make_synthetic_rgbd(spec, 7, 3);
  CHECK(a.rgb.pixels == b.rgb.pixels);
  CHECK(a.depth.pixels == b.depth.pixels);
  CHECK(a.label.pixels == b.label.pixels);
  SyntheticRgbdSample c = make_synthetic_rgbd(spec, 7, 4), d = make_synthetic_rgbd(spec, 8, 3);
  CHECK(a.rgb.pixels != c.rgb.pixels);
  CHECK(a.depth.pixels != c.depth.pixels);
  CHECK(a.rgb.pixels != d.rgb.pixels);
  SyntheticRgbdSample e = make_synthetic_rgbd_cls(spec, 7, 3), f = make_synthetic_rgbd_cls(spec, 7, 3);
  CHECK(e.rgb.pixels == f.rgb.pixels);
  CHECK(e.class_index == f.class_index);
}

TEST_CASE("synthetic RGB-D: shapes, ranges and holes") {
  SyntheticRgbdSpec spec;
  spec.height = 48;
  spec.width = 80;
  SyntheticRgbdSample s = make_synthetic_rgbd(spec, 1, 0);
  CHECK(s.rgb.width == 80);
  CHECK(s.rgb.height == 48);
  CHECK(s.rgb.channels == 3);
  CHECK(s.rgb.bits == 8);
  CHECK(s.depth.channels == 1);
  CHECK(s.depth.bits == 16);
  CHECK(s.label.channels == 1);
  CHECK(s.class_index == -1);
  int64_t holes = 0, total = 0;
  for (int i = 0; i < 20; ++i) {
    SyntheticRgbdSample t = make_synthetic_rgbd(spec, 1, i);
    for (uint16_t v : t.label.pixels) REQUIRE(v < kSyntheticSegClasses);
    for (uint16_t v : t.rgb.pixels) REQUIRE(v <= 255);
    for (uint16_t v : t.depth.pixels) {
      holes += v == 0;
      ++total;
      if (v) REQUIRE((v > 1000 && v < 5500));  // background 1.75-4.25 m, objects in front
    }
  }
  double hole_fraction = double(holes) / total;
  CHECK(hole_fraction > 0.005);
  CHECK(hole_fraction < 0.15);
  CHECK_THROWS_AS(make_synthetic_rgbd(spec, 1, -1), mmfuse::Error);
  spec.height = 2;
  CHECK_THROWS_WITH_AS(make_synthetic_rgbd(spec, 1, 0), doctest::Contains("image size 2x80"), mmfuse::Error);
}

TEST_CASE("synthetic RGB-D: class balance") {
  SyntheticRgbdSpec spec;
  std::array<int64_t, kSyntheticSegClasses> pixels{};
  int64_t total = 0;
  for (int i = 0; i < 150; ++i) {
    SyntheticRgbdSample s = make_synthetic_rgbd(spec, 11, i);
    for (uint16_t v : s.label.pixels) ++pixels[v], ++total;
  }
  double background = double(pixels[0]) / total;
  MESSAGE("background pixel fraction ", background);
  CHECK(background > 0.4);
  CHECK(background < 0.85);
  int64_t foreground = total - pixels[0];
  for (int c = 1; c < kSyntheticSegClasses; ++c) {
    double share = double(pixels[c]) / foreground;  // 1/6 when balanced
    CHECK_MESSAGE(share > 0.10, "class ", c);
    CHECK_MESSAGE(share < 0.25, "class ", c);
  }
  std::array<int, kSyntheticClsClasses> classes{};
  for (int i = 0; i < 300; ++i) {
    SyntheticRgbdSample s = make_synthetic_rgbd_cls(spec, 11, i);
    REQUIRE(s.class_index >= 0);
    REQUIRE(s.class_index < kSyntheticClsClasses);
    ++classes[s.class_index];
    int64_t object = std::count(s.label.pixels.begin(), s.label.pixels.end(), 1 + s.class_index);
    CHECK(object + std::count(s.label.pixels.begin(), s.label.pixels.end(), 0) == int64_t(s.label.pixels.size()));
    CHECK(object > 100);
  }
  for (int c = 0; c < kSyntheticClsClasses; ++c) CHECK(classes[c] > 30);  // 50 expected
}

namespace {

// Per-pixel features. Colour: the pixel's HSV in cylindrical coordinates (s cos h, s sin h, v),
// where an appearance family is a direction and the pale background sits near the axis.
// Depth: depth minus the median of the image's valid depths, in metres (0 for holes), so that
// the distance of the background plane cancels out.
struct Features {
  std::vector<std::array<double, 4>> values;  // s cos(hue), s sin(hue), v, relative depth
  std::vector<int> labels;
};

void add_features(const SyntheticRgbdSample& s, Features& f) {
  std::vector<uint16_t> valid;
  for (uint16_t d : s.depth.pixels)
    if (d) valid.push_back(d);
  std::nth_element(valid.begin(), valid.begin() + valid.size() / 2, valid.end());
  double median = valid.empty() ? 0 : valid[valid.size() / 2];
  for (size_t i = 0; i < s.label.pixels.size(); ++i) {
    double d = s.depth.pixels[i] ? (s.depth.pixels[i] - median) / 1000.0 : 0.0;
    double r = s.rgb.pixels[3 * i] / 255.0, g = s.rgb.pixels[3 * i + 1] / 255.0, b = s.rgb.pixels[3 * i + 2] / 255.0;
    double hi = std::max({r, g, b}), lo = std::min({r, g, b}), sat = hi > 0 ? (hi - lo) / hi : 0;
    double hue = std::atan2(std::sqrt(3.0) * (g - b), 2 * r - g - b);  // hue angle, red = 0
    f.values.push_back({sat * std::cos(hue), sat * std::sin(hue), hi, d});
    f.labels.push_back(s.label.pixels[i]);
  }
}

// Nearest class centroid on the chosen feature columns, each standardised by its training
// mean and standard deviation; returns the pixel accuracy on `test`.
double nearest_centroid_accuracy(const Features& train, const Features& test, const std::vector<int>& columns) {
  const int K = kSyntheticSegClasses;
  size_t F = columns.size();
  std::vector<double> mean(F, 0), sd(F, 0);
  for (const auto& v : train.values)
    for (size_t j = 0; j < F; ++j) mean[j] += v[columns[j]];
  for (size_t j = 0; j < F; ++j) mean[j] /= train.values.size();
  for (const auto& v : train.values)
    for (size_t j = 0; j < F; ++j) sd[j] += (v[columns[j]] - mean[j]) * (v[columns[j]] - mean[j]);
  for (size_t j = 0; j < F; ++j) sd[j] = std::sqrt(sd[j] / train.values.size()) + 1e-12;
  std::vector<std::vector<double>> centroid(K, std::vector<double>(F, 0));
  std::vector<int64_t> count(K, 0);
  for (size_t i = 0; i < train.values.size(); ++i) {
    ++count[train.labels[i]];
    for (size_t j = 0; j < F; ++j) centroid[train.labels[i]][j] += (train.values[i][columns[j]] - mean[j]) / sd[j];
  }
  for (int k = 0; k < K; ++k)
    for (size_t j = 0; j < F; ++j) centroid[k][j] /= std::max<int64_t>(count[k], 1);
  int64_t correct = 0;
  for (size_t i = 0; i < test.values.size(); ++i) {
    int best = 0;
    double best_d = 1e300;
    for (int k = 0; k < K; ++k) {
      double d = 0;
      for (size_t j = 0; j < F; ++j) {
        double e = (test.values[i][columns[j]] - mean[j]) / sd[j] - centroid[k][j];
        d += e * e;
      }
      if (count[k] && d < best_d) best_d = d, best = k;
    }
    correct += best == test.labels[i];
  }
  return double(correct) / test.values.size();
}

}  // namespace

TEST_CASE("synthetic RGB-D: a per-pixel classifier needs both modalities") {
  SyntheticRgbdSpec spec;
  Features train, test;
  for (int i = 0; i < 300; ++i) add_features(make_synthetic_rgbd(spec, 2024, i), train);
  for (int i = 300; i < 400; ++i) add_features(make_synthetic_rgbd(spec, 2024, i), test);
  double rgb = nearest_centroid_accuracy(train, test, {0, 1, 2});
  double depth = nearest_centroid_accuracy(train, test, {3});
  double both = nearest_centroid_accuracy(train, test, {0, 1, 2, 3});
  MESSAGE("nearest-centroid pixel accuracy on held-out scenes: RGB only ", rgb, ", depth only ", depth,
          ", RGB + depth ", both);
  // Measured over seeds 1, 5, 99, 2024: 0.56-0.60, 0.61-0.64, 0.73-0.76 (margins >= 0.10).
  CHECK(both > rgb + 0.07);
  CHECK(both > depth + 0.07);
}
