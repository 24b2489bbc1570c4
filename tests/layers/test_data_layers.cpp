// Data layers: determinism with any number of prefetch threads, resume (batches asked out of
// order), paired augmentation keeping modalities and labels aligned, the documented errors,
// Fashion-MNIST and synthetic RGB-D layers.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "core/layer.h"
#include "core/net.h"
#include "core/prototxt.h"
#include "datasets/data_layer.h"
#include "datasets/fashion_mnist.h"
#include "datasets/image.h"
#include "datasets/scenes.h"
#include "datasets/synthetic_rgbd.h"
#include "doctest/doctest.h"
#include "tests/layers/built_layer.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
using namespace mmfuse::datasets;
using mmfuse::testing::build;
using mmfuse::testing::Built;
using mmfuse::testing::error_of;
using mmfuse::testing::TempDir;

namespace {

bool same_tensors(const TensorList& a, const TensorList& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].shape() != b[i].shape() || a[i].dtype() != b[i].dtype()) return false;
    if (std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes()) != 0) return false;
  }
  return true;
}

// A list dataset whose pixels encode where they come from: sample k (0..4), W x H = 13 x 9.
//   a (RGB 8-bit):  R = 10 x, G = 10 y, B = 20 k + 7
//   b (16-bit gray): 10000 k + 100 y + x
//   label (8-bit):  13 y + x   (< 200 = num_classes)
constexpr int kW = 13, kH = 9, kSamples = 5;
void write_coded_dataset(const TempDir& dir) {
  std::filesystem::create_directories(dir.path / "a");
  std::filesystem::create_directories(dir.path / "b");
  std::filesystem::create_directories(dir.path / "label");
  std::ofstream list(dir / "list.txt");
  list << "# coded samples\n";
  for (int k = 0; k < kSamples; ++k) {
    Image a(kW, kH, 3, 8), b(kW, kH, 1, 16), label(kW, kH, 1, 8);
    for (int y = 0; y < kH; ++y)
      for (int x = 0; x < kW; ++x) {
        a.at(y, x, 0) = 10 * x, a.at(y, x, 1) = 10 * y, a.at(y, x, 2) = 20 * k + 7;
        b.at(y, x) = 10000 * k + 100 * y + x;
        label.at(y, x) = 13 * y + x;
      }
    std::string name = std::to_string(k) + ".png";
    write_png(dir / ("a/" + name), a);
    write_png(dir / ("b/" + name), b);
    write_png(dir / ("label/" + name), label);
    list << "a/" << name << " b/" << name << " label/" << name << "\n";
  }
}

std::string coded_layer(const std::string& source, int threads, const std::string& extra = "",
                        const std::string& augmentation =
                            "augmentation { scale_min: 0.6 scale_max: 1.7 crop_height: 11 crop_width: 10 mirror: true }") {
  return "name: 'data' type: 'MultimodalImageData' top: 'a' top: 'b' top: 'label' multimodal_data_param { source: '" +
         source + "' batch_size: 3 stacked: false num_classes: 200 seed: 11 threads: " + std::to_string(threads) +
         " prefetch: 3 modality { name: 'a' channels: 3 interpolation: NEAREST pad_value: -1 } "
         "modality { name: 'b' channels: 1 interpolation: NEAREST pad_value: -2 } " +
         augmentation + " " + extra + " }";
}

}  // namespace

TEST_CASE("data layers: EpochOrder is a permutation per epoch, identity without shuffle") {
  EpochOrder shuffled(7, 3, true), plain(7, 3, false);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> seen;
    for (int64_t i = 0; i < 7; ++i) seen.push_back(shuffled.sample_at(epoch * 7 + i));
    std::sort(seen.begin(), seen.end());
    for (int64_t i = 0; i < 7; ++i) CHECK(seen[i] == i);
  }
  bool differs = false;
  for (int64_t i = 0; i < 7; ++i) differs |= shuffled.sample_at(i) != shuffled.sample_at(7 + i);
  CHECK(differs);  // epochs are shuffled differently (for this seed)
  for (int64_t i = 0; i < 20; ++i) CHECK(plain.sample_at(i) == i % 7);
  // A negative position (a corrupt solver state's iteration) indexes nothing.
  CHECK_THROWS_WITH_AS(shuffled.sample_at(-3), "sample position -3 is negative", Error);
  CHECK_THROWS_WITH_AS(plain.sample_at(-3), "sample position -3 is negative", Error);
}

TEST_CASE("data layers: BatchPrefetcher returns batch b for any order and thread count, rethrows errors") {
  BatchMaker make = [](int64_t b) -> HostBatch {
    if (b == 6) throw IOError("bad batch 6");
    HostBlob blob;
    blob.shape = {1};
    blob.values = {static_cast<float>(b * b)};
    return {blob};
  };
  for (int threads : {0, 1, 2, 4}) {
    BatchPrefetcher prefetcher(make, threads, 2);
    for (int64_t b : {0, 1, 2, 3, 0, 1, 5, 4, 2, 3, 4, 5}) CHECK(prefetcher.get(b)[0].values[0] == float(b * b));
    CHECK(error_of([&] { prefetcher.get(6); }) == "bad batch 6");
    CHECK(prefetcher.get(7)[0].values[0] == 49.f);  // goes on after an error
    CHECK(error_of([&] { prefetcher.get(-1); }) == "batch index -1 is negative");
  }
}

TEST_CASE("MultimodalImageData: same seed gives bit-identical batches with 0/1/2/4 threads and out of order") {
  TempDir dir("dl_determinism");
  write_coded_dataset(dir);
  std::vector<TensorList> reference;
  {
    Built l = build(coded_layer(dir / "list.txt", 0));
    for (int b = 0; b < 6; ++b) reference.push_back(l.batch(b));
  }
  for (int threads : {1, 2, 4}) {
    Built l = build(coded_layer(dir / "list.txt", threads));
    for (int b = 0; b < 6; ++b) CHECK_MESSAGE(same_tensors(l.batch(b), reference[b]), "threads ", threads, " batch ", b);
  }
  // Resume at batch 4, then a test run restarting at 0, then jumps.
  Built l = build(coded_layer(dir / "list.txt", 2));
  for (int b : {4, 5, 0, 1, 2, 3, 1, 5, 0}) CHECK_MESSAGE(same_tensors(l.batch(b), reference[b]), "batch ", b);
  // The seed matters.
  std::string text = coded_layer(dir / "list.txt", 0);
  text.replace(text.find("seed: 11"), 8, "seed: 12");
  Built other = build(text);
  CHECK_FALSE(same_tensors(other.batch(0), reference[0]));
}

TEST_CASE("MultimodalImageData: paired augmentation keeps modalities and labels aligned") {
  TempDir dir("dl_align");
  write_coded_dataset(dir);
  Built l = build(coded_layer(dir / "list.txt", 2));
  CHECK(l.shapes == std::vector<Shape>{{3, 3, 11, 10}, {3, 1, 11, 10}, {3, 11, 10}});
  int flipped = 0, unflipped = 0, padded = 0;
  std::vector<int> epoch_count(kSamples, 0);
  for (int b = 0; b < 10; ++b) {
    TensorList t = l.batch(b);
    REQUIRE(t[2].dtype() == DType::i32);
    auto a = t[0].to_vector<float>(), bb = t[1].to_vector<float>();
    auto label = t[2].to_vector<int32_t>();
    for (int j = 0; j < 3; ++j) {
      int sample = -1, first_x = -1, last_x = -1;
      for (int y = 0; y < 11; ++y)
        for (int x = 0; x < 10; ++x) {
          const int o = y * 10 + x;
          const float r = a[(j * 3 + 0) * 110 + o], g = a[(j * 3 + 1) * 110 + o], bl = a[(j * 3 + 2) * 110 + o];
          const float v = bb[j * 110 + o];
          const int lab = label[j * 110 + o];
          if (r == -1) {  // padding: every modality and the label
            CHECK((g == -1 && bl == -1 && v == -2 && lab == 255));
            ++padded;
            continue;
          }
          const int sx = static_cast<int>(r) / 10, sy = static_cast<int>(g) / 10, sk = (static_cast<int>(bl) - 7) / 20;
          if (sample < 0) sample = sk;
          CHECK(sk == sample);
          CHECK(v == float(10000 * sk + 100 * sy + sx));
          CHECK(lab == 13 * sy + sx);
          if (x == 0 && y == 0) first_x = sx;
          if (x == 9 && y == 0) last_x = sx;
        }
      if (sample >= 0 && b < 5) ++epoch_count[sample];  // batches 0-4: positions 0..14, three epochs
      if (first_x >= 0 && last_x >= 0) (first_x > last_x ? flipped : unflipped)++;
    }
  }
  CHECK(flipped > 0);
  CHECK(unflipped > 0);
  CHECK(padded > 0);  // scales below 11/9 pad
  for (int k = 0; k < kSamples; ++k) CHECK(epoch_count[k] == 3);
}

TEST_CASE("MultimodalImageData: TEST phase reads samples in order with a centre crop; whole images without crop") {
  TempDir dir("dl_test_phase");
  write_coded_dataset(dir);
  Built l = build(coded_layer(dir / "list.txt", 2, "", "augmentation { crop_height: 5 crop_width: 7 mirror: true }"),
                  proto::TEST);
  for (int b = 0; b < 4; ++b) {
    auto bb = l.batch(b)[1].to_vector<float>();
    for (int j = 0; j < 3; ++j) {
      const int k = (b * 3 + j) % kSamples;
      // centre crop of 13 x 9 to 7 x 5: offset (3, 2), no flip
      for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 7; ++x) CHECK(bb[j * 35 + y * 7 + x] == float(10000 * k + 100 * (y + 2) + x + 3));
    }
  }
  Built whole = build(coded_layer(dir / "list.txt", 0, "", ""), proto::TEST);
  CHECK(whole.shapes[0] == Shape{3, 3, kH, kW});
  auto lab = whole.batch(0)[2].to_vector<int32_t>();
  for (int i = 0; i < kW * kH; ++i) CHECK(lab[i] == i);
}

TEST_CASE("MultimodalImageData: bilinear modality, mean/std/scale, replicate and the stacked top") {
  TempDir dir("dl_stacked");
  write_coded_dataset(dir);
  std::string text = "type: 'MultimodalImageData' name: 'd' top: 'data' top: 'label' multimodal_data_param { source: '" +
                     dir / "list.txt" +
                     "' batch_size: 2 shuffle: false "
                     "modality { channels: 3 scale: 0.5 mean: 1 mean: 2 mean: 3 std: 2 } "
                     "modality { channels: 1 replicate: 3 interpolation: NEAREST scale: 0.001 } }";
  Built l = build(text, proto::TRAIN);
  CHECK(l.shapes == std::vector<Shape>{{4, 3, kH, kW}, {2, kH, kW}});
  auto d = l.batch(0)[0].to_vector<float>();
  const int plane = kW * kH;
  // sample 0 (no shuffle), pixel (x 4, y 3): a = (40, 30, 7), b = 304
  const int o = 3 * kW + 4;
  CHECK(d[0 * plane + o] == doctest::Approx((40 * 0.5 - 1) / 2));
  CHECK(d[1 * plane + o] == doctest::Approx((30 * 0.5 - 2) / 2));
  CHECK(d[2 * plane + o] == doctest::Approx((7 * 0.5 - 3) / 2));
  for (int c = 0; c < 3; ++c) CHECK(d[(2 * 3 + c) * plane + o] == doctest::Approx(0.304));  // modality b, sample 0

  std::string bad = "type: 'MultimodalImageData' name: 'd' top: 'data' top: 'label' multimodal_data_param { source: '" +
                    dir / "list.txt" + "' modality { name: 'rgb' channels: 3 } modality { name: 'depth' channels: 1 } }";
  std::string msg = error_of([&] { build(bad); });
  CHECK(msg.find("'rgb' has 3 and 'depth' has 1") != std::string::npos);
  CHECK(msg.find("replicate") != std::string::npos);
}

TEST_CASE("MultimodalImageData: missing file, corrupt PNG, label out of range, mismatched sizes") {
  TempDir dir("dl_errors");
  write_coded_dataset(dir);
  {
    std::ofstream(dir / "corrupt.png") << "this is not a png";
    Image small(12, 9, 1, 16), big_label(kW, kH, 1, 8);
    write_png(dir / "small.png", small);
    big_label.at(4, 5) = 250;
    write_png(dir / "oor.png", big_label);
  }
  struct Case {
    std::string line2, expect1, expect2;
  };
  std::vector<Case> cases = {
      {"a/missing.png b/1.png label/1.png", "missing.png", "No such file"},
      {"corrupt.png b/1.png label/1.png", "cannot decode image", "corrupt.png"},
      {"a/1.png b/1.png oor.png", "label value 250", "oor.png"},
      {"a/1.png small.png label/1.png", "different sizes", "small.png' is 12x9"},
  };
  for (const auto& c : cases) {
    {
      std::ofstream list(dir / "bad.txt");
      list << "a/0.png b/0.png label/0.png\n" << c.line2 << "\n";
    }
    for (int threads : {0, 2}) {
      Built l = build(coded_layer(dir / "bad.txt", threads, "", "augmentation { crop_height: 5 }"), proto::TEST);
      std::string msg = error_of([&] { l.batch(0); });
      CAPTURE(msg);
      CHECK(msg.find("bad.txt:2") != std::string::npos);
      CHECK(msg.find(c.expect1) != std::string::npos);
      CHECK(msg.find(c.expect2) != std::string::npos);
      CHECK(error_of([&] { l.batch(0); }) == msg);  // still the same error, no crash
    }
  }
  // The first sample is read in setup: its error comes from setup.
  {
    std::ofstream list(dir / "bad.txt");
    list << "a/missing.png b/0.png label/0.png\n";
  }
  std::string msg = error_of([&] { build(coded_layer(dir / "bad.txt", 1), proto::TEST); });
  CHECK(msg.find("bad.txt:1") != std::string::npos);
  CHECK(msg.find("missing.png") != std::string::npos);
  // Varying sizes without a crop and batch_size > 1.
  {
    Image a(7, 5, 3, 8), b(7, 5, 1, 16), label(7, 5, 1, 8);
    write_png(dir / "a7.png", a), write_png(dir / "b7.png", b), write_png(dir / "l7.png", label);
    std::ofstream list(dir / "bad.txt");
    list << "a/0.png b/0.png label/0.png\na7.png b7.png l7.png\n";
  }
  Built l = build(coded_layer(dir / "bad.txt", 0, "", ""), proto::TEST);
  msg = error_of([&] { l.batch(0); });
  CHECK(msg.find("batch_size: 1") != std::string::npos);
}

TEST_CASE("FashionMnistData: shapes, scaling and the label histogram of the test set") {
  if (!fashion_mnist_available("test")) {
    MESSAGE("skipped: Fashion-MNIST not found in ", fashion_mnist_dir(), " (apt-get install dataset-fashion-mnist)");
    return;
  }
  Built l = build("name: 'f' type: 'FashionMnistData' top: 'data' top: 'label' fashion_mnist_param { train: false "
                  "batch_size: 1000 threads: 2 }",
                  proto::TEST);
  CHECK(l.shapes == std::vector<Shape>{{1000, 1, 28, 28}, {1000}});
  FashionMnist raw = load_fashion_mnist("test");
  std::vector<int> histogram(10, 0);
  for (int b = 0; b < 10; ++b) {
    TensorList t = l.batch(b);
    auto labels = t[1].to_vector<int32_t>();
    for (int32_t v : labels) ++histogram.at(v);
    if (b == 3) {
      auto d = t[0].to_vector<float>();
      for (int k = 0; k < 784; k += 37) CHECK(d[k] == doctest::Approx(raw.images.pixels[3000 * 784 + k] / 255.0));
      CHECK(labels[0] == raw.labels[3000]);
    }
  }
  for (int c = 0; c < 10; ++c) CHECK(histogram[c] == 1000);
  Built two = build("name: 'f' type: 'FashionMnistData' top: 'v1' top: 'v2' top: 'label' fashion_mnist_param { "
                    "train: false two_view: true batch_size: 5 limit: 200 }");
  CHECK(two.shapes == std::vector<Shape>{{5, 1, 28, 28}, {5, 1, 28, 28}, {5}});
  TensorList t = two.batch(1);
  for (float v : t[1].to_vector<float>()) CHECK((v >= 0 && v <= 1));
  CHECK(same_tensors(t, two.batch(1)));
}

TEST_CASE("SyntheticRgbdData: shapes, determinism, stacked vs unstacked, mirror, finite sets") {
  const std::string common = "batch_size: 3 size: 17 seed: 5 ";
  auto layer = [&](const std::string& tops, const std::string& extra) {
    return "name: 's' type: 'SyntheticRgbdData' " + tops + " synthetic_rgbd_param { " + common + extra + " }";
  };
  const std::string stacked_tops = "top: 'data' top: 'label'", split_tops = "top: 'rgb' top: 'depth' top: 'label'";
  Built st = build(layer(stacked_tops, "threads: 0"));
  CHECK(st.shapes == std::vector<Shape>{{6, 3, 17, 17}, {3, 17, 17}});
  Built sp = build(layer(split_tops, "stacked: false threads: 3"));
  CHECK(sp.shapes == std::vector<Shape>{{3, 3, 17, 17}, {3, 1, 17, 17}, {3, 17, 17}});
  for (int b : {0, 2, 1}) {
    TensorList s = st.batch(b), u = sp.batch(b);
    auto data = s[0].to_vector<float>(), rgb = u[0].to_vector<float>(), depth = u[1].to_vector<float>();
    const size_t plane = 17 * 17;
    CHECK(std::equal(rgb.begin(), rgb.end(), data.begin()));
    for (int j = 0; j < 3; ++j)
      for (int c = 0; c < 3; ++c)
        CHECK(std::equal(depth.begin() + j * plane, depth.begin() + (j + 1) * plane,
                         data.begin() + ((3 + j) * 3 + c) * plane));
    CHECK(same_tensors({s[1]}, {u[2]}));
    // the endless stream: sample b*3+j of the seed
    auto label = s[1].to_vector<int32_t>();
    SyntheticRgbdSpec spec;
    spec.height = spec.width = 17;
    SyntheticRgbdSample ref = make_synthetic_rgbd(spec, 5, b * 3 + 2);
    for (size_t i = 0; i < plane; ++i) CHECK(label[2 * plane + i] == ref.label.pixels[i]);
    // depth transform: (mm / 1000 - 2.75) / 0.75, holes 0
    const uint16_t mm = ref.depth.pixels[100];
    CHECK(depth[2 * plane + 100] == doctest::Approx(mm ? (mm / 1000.0 - 2.75) / 0.75 : 0.0).epsilon(1e-5));
  }
  // Thread counts agree.
  for (int threads : {1, 2, 4}) {
    Built t = build(layer(stacked_tops, "threads: " + std::to_string(threads)));
    for (int b : {0, 1, 2, 5}) CHECK(same_tensors(t.batch(b), st.batch(b)));
  }
  // Mirror: each sample is the unmirrored one or its exact horizontal flip (data and label).
  Built mirrored = build(layer(stacked_tops, "mirror: true"));
  int flips = 0;
  for (int b = 0; b < 4; ++b) {
    auto m = mirrored.batch(b), p = st.batch(b);
    auto md = m[0].to_vector<float>(), pd = p[0].to_vector<float>();
    auto ml = m[1].to_vector<int32_t>(), pl = p[1].to_vector<int32_t>();
    for (int j = 0; j < 3; ++j) {
      bool same = true, flipped = true;
      for (int y = 0; y < 17; ++y)
        for (int x = 0; x < 17; ++x) {
          size_t o = (j * 17 + y) * 17 + x, f = (j * 17 + y) * 17 + (16 - x);
          same &= ml[o] == pl[o];
          flipped &= ml[o] == pl[f];
          for (int slice : {j, 3 + j}) {  // rgb channel 0 and depth channel 0 of sample j
            size_t po = (slice * 3 * 17 + y) * 17 + x, pf = (slice * 3 * 17 + y) * 17 + (16 - x);
            same &= md[po] == pd[po];
            flipped &= md[po] == pd[pf];
          }
        }
      CHECK((same || flipped));
      flips += flipped && !same;
    }
  }
  CHECK(flips > 0);
  // A finite set in TEST order, offset by first_index; classification labels.
  Built finite = build(layer(stacked_tops, "num_samples: 4 first_index: 100 classification: true"), proto::TEST);
  CHECK(finite.shapes[1] == Shape{3});
  SyntheticRgbdSpec spec;
  spec.height = spec.width = 17;
  auto cls = finite.batch(1)[1].to_vector<int32_t>();  // positions 3, 4, 5 -> samples 3, 0, 1
  CHECK(cls[0] == make_synthetic_rgbd_cls(spec, 5, 103).class_index);
  CHECK(cls[1] == make_synthetic_rgbd_cls(spec, 5, 100).class_index);
  CHECK(cls[2] == make_synthetic_rgbd_cls(spec, 5, 101).class_index);
  CHECK(error_of([&] { build(layer(stacked_tops + " top: 'x'", "")); }).find("takes 2 tops") != std::string::npos);
}

TEST_CASE("SceneData: chosen modality tops, value ranges, stacked vs split, threads, mirror, errors") {
  const std::string common = "batch_size: 2 size: 24 seed: 9 ";
  auto layer = [&](const std::string& tops, const std::string& extra) {
    return "name: 'scenes' type: 'SceneData' " + tops + " scene_param { " + common + extra + " }";
  };
  const std::string modalities = "modality: 'normal' modality: 'depth' modality: 'rgb' ";
  Built split = build(layer("top: 'normal' top: 'depth' top: 'rgb' top: 'label'", modalities + "threads: 0"));
  CHECK(split.shapes == std::vector<Shape>{{2, 3, 24, 24}, {2, 1, 24, 24}, {2, 3, 24, 24}, {2, 24, 24}});
  CHECK(split.layer->modality_names() == std::vector<std::string>{"normal", "depth", "rgb"});
  Built stacked = build(layer("top: 'data' top: 'label'", modalities + "stacked: true threads: 3"));
  CHECK(stacked.shapes == std::vector<Shape>{{6, 3, 24, 24}, {2, 24, 24}});
  SceneSpec spec;
  spec.width = spec.height = 24;
  const size_t plane = 24 * 24;
  for (int b : {1, 0}) {
    TensorList u = split.batch(b), s = stacked.batch(b);
    auto normal = u[0].to_vector<float>(), depth = u[1].to_vector<float>(), rgb = u[2].to_vector<float>();
    auto data = s[0].to_vector<float>();
    auto label = u[3].to_vector<int32_t>();
    CHECK(same_tensors({u[3]}, {s[1]}));
    for (int j = 0; j < 2; ++j) {
      const SceneImages ref = make_scene_images(spec, 9, b * 2 + j);  // the endless stream
      for (size_t i = 0; i < plane; ++i) {
        const int y = static_cast<int>(i / 24), x = static_cast<int>(i % 24);
        REQUIRE(label[j * plane + i] == ref.label.at(y, x));
        REQUIRE(depth[j * plane + i] == doctest::Approx(ref.depth.at(y, x) / 4000.0 - 1).epsilon(1e-6));
        for (int c = 0; c < 3; ++c) {
          REQUIRE(normal[(j * 3 + c) * plane + i] == doctest::Approx(ref.normal.at(y, x, c) / 127.5 - 1).epsilon(1e-6));
          REQUIRE(rgb[(j * 3 + c) * plane + i] == doctest::Approx(ref.rgb.at(y, x, c) / 127.5 - 1).epsilon(1e-6));
          // stacked: normal rows 0-1, depth rows 2-3 (replicated), rgb rows 4-5
          REQUIRE(data[((0 + j) * 3 + c) * plane + i] == normal[(j * 3 + c) * plane + i]);
          REQUIRE(data[((2 + j) * 3 + c) * plane + i] == depth[j * plane + i]);
          REQUIRE(data[((4 + j) * 3 + c) * plane + i] == rgb[(j * 3 + c) * plane + i]);
        }
      }
    }
  }
  // Mirror: a flipped sample has every top flipped and its normals' x negated.
  Built mirrored = build(layer("top: 'normal' top: 'depth' top: 'rgb' top: 'label'", modalities + "mirror: true"));
  int flips = 0;
  for (int b = 0; b < 4; ++b) {
    TensorList m = mirrored.batch(b), p = split.batch(b);
    auto mn = m[0].to_vector<float>(), pn = p[0].to_vector<float>();
    auto ml = m[3].to_vector<int32_t>(), pl = p[3].to_vector<int32_t>();
    for (int j = 0; j < 2; ++j) {
      bool same = true, flipped = true;
      for (int y = 0; y < 24; ++y)
        for (int x = 0; x < 24; ++x) {
          const size_t o = (j * 24 + y) * 24 + x, f = (j * 24 + y) * 24 + (23 - x);  // label
          const size_t n0 = j * 3 * plane + y * 24, n1 = n0 + plane;                 // normal x, y rows
          same &= ml[o] == pl[o] && mn[n0 + x] == pn[n0 + x] && mn[n1 + x] == pn[n1 + x];
          flipped &= ml[o] == pl[f] && mn[n0 + x] == -pn[n0 + 23 - x] && mn[n1 + x] == pn[n1 + 23 - x];
        }
      CHECK((same || flipped));
      flips += flipped && !same;
    }
  }
  CHECK(flips > 0);
  // Defaults: rgb and depth, then the label; a finite test set in order.
  Built plain = build(layer("top: 'rgb' top: 'depth' top: 'label'", "num_samples: 3 first_index: 40"), proto::TEST);
  CHECK(plain.shapes == std::vector<Shape>{{2, 3, 24, 24}, {2, 1, 24, 24}, {2, 24, 24}});
  auto labels = plain.batch(1)[2].to_vector<int32_t>();  // positions 2, 3 -> samples 42, 40
  CHECK(labels[0] == make_scene_images(spec, 9, 42).label.pixels[0]);
  Built cls = build(layer("top: 'rgb' top: 'depth' top: 'label'", "classification: true threads: 0"));
  CHECK(cls.shapes == std::vector<Shape>{{2, 3, 24, 24}, {2, 1, 24, 24}, {2}});
  spec.classification = true;
  auto classes = cls.batch(3)[2].to_vector<int32_t>();
  CHECK(classes[0] == make_scene_images(spec, 9, 6).class_index);
  CHECK(classes[1] == make_scene_images(spec, 9, 7).class_index);
  Built no_label = build(layer("top: 'shading'", "modality: 'shading' label: false"));
  CHECK(no_label.shapes == std::vector<Shape>{{2, 1, 24, 24}});
  CHECK(error_of([&] { build(layer("top: 'a' top: 'b'", "modality: 'colour'")); }).find("unknown modality 'colour'") !=
        std::string::npos);
  CHECK(error_of([&] { build(layer("top: 'rgb' top: 'depth'", "")); }).find("takes 3 tops") != std::string::npos);
}

TEST_CASE("data layers inside a Net: phases pick their layer, tops have the setup shapes") {
  proto::NetParameter np = read_net_text(R"(
    name: "n"
    layer { name: "train_data" type: "SyntheticRgbdData" top: "data" top: "label" include { phase: TRAIN }
            synthetic_rgbd_param { batch_size: 2 size: 9 mirror: true } }
    layer { name: "test_data" type: "SyntheticRgbdData" top: "data" top: "label" include { phase: TEST }
            synthetic_rgbd_param { batch_size: 3 size: 9 num_samples: 5 first_index: 50 threads: 0 } }
  )");
  Net train(np, proto::TRAIN), test(np, proto::TEST);
  CHECK(train.blob_shape("data") == Shape{4, 3, 9, 9});
  CHECK(test.blob_shape("label") == Shape{3, 9, 9});
  auto blobs = train.forward();
  CHECK(blobs.at("data").shape() == Shape{4, 3, 9, 9});
  CHECK(blobs.at("label").dtype() == DType::i32);
  CHECK(test.forward().at("label").shape() == Shape{3, 9, 9});
}
