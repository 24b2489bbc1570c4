// Fashion-MNIST IDX reading (real files when the Debian package is installed, small hand-made
// files always) and the two-view variant.
#include <zlib.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "base/error.h"
#include "datasets/fashion_mnist.h"
#include "doctest/doctest.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
using namespace mmfuse::datasets;
using mmfuse::testing::TempDir;

namespace {


std::vector<uint8_t> idx(uint32_t magic, std::vector<uint32_t> dims, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out;
  dims.insert(dims.begin(), magic);
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(d >> s));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void write_plain(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == int(bytes.size()));
  gzclose(f);
}

// A tiny Fashion-MNIST-shaped set: 20 images of 28x28, labels i % 10, image i filled with i.
void write_tiny_set(const TempDir& dir, const std::string& prefix, bool gz) {
  std::vector<uint8_t> pixels(20 * 28 * 28), labels(20);
  for (int i = 0; i < 20; ++i) {
    labels[i] = static_cast<uint8_t>(i % 10);
    for (int p = 0; p < 28 * 28; ++p) pixels[i * 784 + p] = static_cast<uint8_t>(10 * i + (p % 7));
  }
  auto write = gz ? write_gz : write_plain;
  std::string ext = gz ? ".gz" : "";
  write(dir / (prefix + "-images-idx3-ubyte" + ext), idx(0x803, {20, 28, 28}, pixels));
  write(dir / (prefix + "-labels-idx1-ubyte" + ext), idx(0x801, {20}, labels));
}

}  // namespace

TEST_CASE("IDX files: plain and gzip, hand-made") {
  TempDir dir("idx");
  write_tiny_set(dir, "train", true);
  write_tiny_set(dir, "t10k", false);
  for (const char* split : {"train", "test"}) {
    CAPTURE(split);
    CHECK(fashion_mnist_available(split, dir.path.string()));
    FashionMnist d = load_fashion_mnist(split, dir.path.string());
    CHECK(d.size() == 20);
    CHECK(d.images.rows == 28);
    CHECK(d.images.cols == 28);
    CHECK(d.labels[13] == 3);
    CHECK(d.images.pixels[13 * 784 + 9] == 132);  // 10 * 13 + 9 % 7
  }
  CHECK_FALSE(fashion_mnist_available("train", (dir / "elsewhere")));
  CHECK_THROWS_WITH_AS(load_fashion_mnist("validation", dir.path.string()), doctest::Contains("'train' or 'test'"),
                       Error);
}

TEST_CASE("IDX errors name the path and the reason") {
  TempDir dir("idxbad");
  CHECK_THROWS_WITH_AS(read_idx_images(dir / "none-idx3-ubyte"), doctest::Contains("none-idx3-ubyte"), IOError);
  write_plain(dir / "labels-as-images", idx(0x801, {3}, {1, 2, 3}));
  CHECK_THROWS_WITH_AS(read_idx_images(dir / "labels-as-images"),
                       doctest::Contains("labels-as-images' is not an IDX image file: bad magic 0x801"), IOError);
  write_gz(dir / "short.gz", idx(0x803, {2, 28, 28}, std::vector<uint8_t>(784 + 100)));
  CHECK_THROWS_WITH_AS(read_idx_images(dir / "short.gz"), doctest::Contains("short.gz' is truncated"), IOError);
  write_plain(dir / "long", idx(0x801, {2}, {1, 2, 3}));
  CHECK_THROWS_WITH_AS(read_idx_labels(dir / "long"), doctest::Contains("long' has trailing bytes"), IOError);
  write_plain(dir / "hdr", {0, 0, 8});
  CHECK_THROWS_WITH_AS(read_idx_labels(dir / "hdr"), doctest::Contains("hdr' is truncated"), IOError);
  write_plain(dir / "t10k-images-idx3-ubyte", idx(0x803, {2, 28, 28}, std::vector<uint8_t>(2 * 784)));
  write_plain(dir / "t10k-labels-idx1-ubyte", idx(0x801, {3}, {1, 2, 3}));
  CHECK_THROWS_WITH_AS(load_fashion_mnist("test", dir.path.string()), doctest::Contains("holds 2 images but"), IOError);
  write_plain(dir / "t10k-labels-idx1-ubyte", idx(0x801, {2}, {1, 12}));
  CHECK_THROWS_WITH_AS(load_fashion_mnist("test", dir.path.string()), doctest::Contains("label 12 of item 1"), IOError);
}

TEST_CASE("two-view variant: deterministic, same class, rotation range, noise range") {
  TempDir dir("twoview");
  write_tiny_set(dir, "train", false);
  TwoViewFashionMnist a(load_fashion_mnist("train", dir.path.string()), 42);
  TwoViewFashionMnist b(load_fashion_mnist("train", dir.path.string()), 42);
  TwoViewFashionMnist c(load_fashion_mnist("train", dir.path.string()), 43);
  bool any_difference = false;
  for (int64_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    TwoViewSample s = a.sample(i), t = b.sample(i);
    CHECK(s.view1 == t.view1);
    CHECK(s.view2 == t.view2);
    CHECK(s.partner == t.partner);
    CHECK(s.label == a.data().labels[i]);
    CHECK(a.data().labels[s.partner] == s.label);  // view 2 shows the same class...
    CHECK(s.partner != i);                           // ...but another image
    CHECK(s.angle >= -45.0);
    CHECK(s.angle <= 45.0);
    REQUIRE(s.view1.size() == 784);
    REQUIRE(s.view2.size() == 784);
    const uint8_t* other = a.data().images.pixels.data() + s.partner * 784;
    for (int p = 0; p < 784; ++p) {
      REQUIRE(s.view2[p] >= other[p] / 255.0f);
      REQUIRE(s.view2[p] <= 1.0f);
      REQUIRE(s.view1[p] >= 0.0f);
      REQUIRE(s.view1[p] <= 1.0f);
    }
    any_difference |= c.sample(i).angle != s.angle;
  }
  CHECK(any_difference);
  CHECK_THROWS_AS(a.sample(20), Error);
}

TEST_CASE("Fashion-MNIST: the real files (Debian dataset-fashion-mnist)") {
  if (!fashion_mnist_available("train") || !fashion_mnist_available("test")) {
    MESSAGE("skipped: Fashion-MNIST not found in ", fashion_mnist_dir(),
            " (apt-get install dataset-fashion-mnist, or set MMFUSE_FASHION_MNIST)");
    return;
  }
  FashionMnist train = load_fashion_mnist("train"), test = load_fashion_mnist("test");
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.images.rows == 28);
  CHECK(train.images.cols == 28);
  std::array<int, 10> train_hist{}, test_hist{};
  for (uint8_t l : train.labels) ++train_hist[l];
  for (uint8_t l : test.labels) ++test_hist[l];
  for (int k = 0; k < 10; ++k) {
    CHECK(train_hist[k] == 6000);
    CHECK(test_hist[k] == 1000);
  }
  TwoViewFashionMnist two(std::move(test), 7);
  for (int64_t i : {0, 1, 9999}) {
    TwoViewSample s = two.sample(i);
    CHECK(two.data().labels[s.partner] == s.label);
  }
}
