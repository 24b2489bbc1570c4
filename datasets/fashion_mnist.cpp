#include "datasets/fashion_mnist.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "base/error.h"
#include "core/random.h"
#include "datasets/transforms.h"

namespace mmfuse::datasets {

namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser>;

// An IDX file as a stream: big-endian header words, then the payload.
class IdxReader {
 public:
  explicit IdxReader(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb")) {
    MMF_CHECK(file_, IOError, "cannot open '", path, "': ", errno ? std::strerror(errno) : "gzopen failed");
  }
  uint32_t word(const char* what) {
    uint8_t b[4];
    read(b, 4, what);
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
  }
  void read(uint8_t* out, size_t n, const char* what) {
    size_t done = 0;
    while (done < n) {
      unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
      int got = gzread(file_.get(), out + done, chunk);
      if (got < 0) {
        int code = 0;
        const char* message = gzerror(file_.get(), &code);
        throw IOError(detail::concat("cannot read '", path_, "': ", message));
      }
      MMF_CHECK(got > 0, IOError, "'", path_, "' is truncated: expected ", n, " bytes of ", what, ", found ", done);
      done += static_cast<size_t>(got);
    }
  }
  void expect_end() {
    uint8_t extra;
    MMF_CHECK(gzread(file_.get(), &extra, 1) == 0, IOError, "'", path_, "' has trailing bytes after the ",
              "declared content");
  }
  void check_magic(uint32_t want, const char* kind) {
    uint32_t magic = word("header");
    MMF_CHECK(magic == want, IOError, "'", path_, "' is not an IDX ", kind, " file: bad magic 0x", std::hex,
              magic, " (expected 0x", want, ")");
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  GzFile file_;
};

std::string idx_path(const std::string& dir, const std::string& stem) {
  std::filesystem::path plain = std::filesystem::path(dir) / stem, gz = plain;
  gz += ".gz";
  if (std::filesystem::exists(gz)) return gz.string();
  return plain.string();  // missing files are reported by the reader with this path
}

std::string split_prefix(const std::string& split) {
  MMF_CHECK(split == "train" || split == "test", Error, "Fashion-MNIST: split must be 'train' or 'test', got '",
            split, "'");
  return split == "train" ? "train" : "t10k";
}

}  // namespace

std::string fashion_mnist_dir() {
  const char* env = std::getenv("MMFUSE_FASHION_MNIST");
  return env && *env ? env : kFashionMnistDefaultDir;
}

IdxImages read_idx_images(const std::string& path) {
  errno = 0;
  IdxReader in(path);
  in.check_magic(0x00000803, "image");
  IdxImages out;
  out.count = in.word("header");
  out.rows = static_cast<int>(in.word("header"));
  out.cols = static_cast<int>(in.word("header"));
  MMF_CHECK(out.rows > 0 && out.cols > 0 && out.rows <= 4096 && out.cols <= 4096, IOError, "'", path,
            "': implausible image size ", out.rows, "x", out.cols);
  MMF_CHECK(out.count <= (int64_t(1) << 32) / (int64_t(out.rows) * out.cols), IOError, "'", path,
            "': implausible image count ", out.count);
  out.pixels.resize(static_cast<size_t>(out.count) * out.rows * out.cols);
  in.read(out.pixels.data(), out.pixels.size(), "pixels");
  in.expect_end();
  return out;
}

std::vector<uint8_t> read_idx_labels(const std::string& path) {
  errno = 0;
  IdxReader in(path);
  in.check_magic(0x00000801, "label");
  uint32_t count = in.word("header");
  MMF_CHECK(count <= (1u << 30), IOError, "'", path, "': implausible label count ", count);
  std::vector<uint8_t> labels(count);
  in.read(labels.data(), labels.size(), "labels");
  in.expect_end();
  return labels;
}

bool fashion_mnist_available(const std::string& split, const std::string& dir) {
  std::string folder = dir.empty() ? fashion_mnist_dir() : dir, prefix = split_prefix(split);
  return std::filesystem::exists(idx_path(folder, prefix + "-images-idx3-ubyte")) &&
         std::filesystem::exists(idx_path(folder, prefix + "-labels-idx1-ubyte"));
}

FashionMnist load_fashion_mnist(const std::string& split, const std::string& dir) {
  std::string folder = dir.empty() ? fashion_mnist_dir() : dir, prefix = split_prefix(split);
  FashionMnist data;
  std::string images_path = idx_path(folder, prefix + "-images-idx3-ubyte");
  std::string labels_path = idx_path(folder, prefix + "-labels-idx1-ubyte");
  data.images = read_idx_images(images_path);
  data.labels = read_idx_labels(labels_path);
  MMF_CHECK(static_cast<int64_t>(data.labels.size()) == data.images.count, IOError, "Fashion-MNIST: '",
            images_path, "' holds ", data.images.count, " images but '", labels_path, "' ", data.labels.size(),
            " labels");
  for (size_t i = 0; i < data.labels.size(); ++i)
    MMF_CHECK(data.labels[i] < 10, IOError, "Fashion-MNIST: '", labels_path, "': label ", int(data.labels[i]),
              " of item ", i, " is not in 0..9");
  return data;
}

TwoViewFashionMnist::TwoViewFashionMnist(FashionMnist data, uint64_t seed)
    : data_(std::move(data)), seed_(seed), by_class_(10) {
  for (int64_t i = 0; i < data_.size(); ++i) by_class_.at(data_.labels[i]).push_back(i);
}

TwoViewSample TwoViewFashionMnist::sample(int64_t index) const {
  MMF_CHECK(index >= 0 && index < size(), Error, "two-view Fashion-MNIST: index ", index, " out of range [0, ",
            size(), ")");
  const int rows = data_.images.rows, cols = data_.images.cols, n = rows * cols;
  Generator gen;
  gen.set_state(seed_ ^ 0x2f1e3d4c5b6a7988ull, static_cast<uint64_t>(index) << 32);  // sample i's own block
  TwoViewSample s;
  s.label = data_.labels[index];
  s.angle = -45.0 + 90.0 * gen.uniform();
  const uint8_t* image = data_.images.pixels.data() + static_cast<size_t>(index) * n;
  std::vector<float> scaled(image, image + n);
  for (float& v : scaled) v /= 255.0f;
  s.view1 = rotate_bilinear(scaled, rows, cols, 1, s.angle);
  const auto& same = by_class_[s.label];
  if (same.size() > 1) {  // another image of the class: skip index itself
    auto self = std::lower_bound(same.begin(), same.end(), index) - same.begin();
    auto pick = static_cast<int64_t>(gen.below(same.size() - 1));
    s.partner = same[pick >= self ? pick + 1 : pick];
  } else {
    s.partner = index;
  }
  const uint8_t* other = data_.images.pixels.data() + static_cast<size_t>(s.partner) * n;
  s.view2.resize(n);
  for (int i = 0; i < n; ++i)
    s.view2[i] = std::min(1.0f, other[i] / 255.0f + static_cast<float>(gen.uniform()));
  return s;
}

}  // namespace mmfuse::datasets
