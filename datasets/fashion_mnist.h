// Fashion-MNIST (Xiao et al. 2017) from IDX files, gzip-compressed or plain, and the two-view
// variant of the multi-view MNIST protocol (Wang et al., "On deep multi-view representation
// learning", ICML 2015) for fusion experiments.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmfuse::datasets {

// Where Debian's dataset-fashion-mnist package installs the files.
inline constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";

// The folder to read from: $MMFUSE_FASHION_MNIST when set, else kFashionMnistDefaultDir.
std::string fashion_mnist_dir();

struct IdxImages {
  int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols, row-major
};

// Reads an IDX file (magic 0x00000803 images, 0x00000801 labels), gzip-compressed or plain
// (zlib's gzread reads both). Throws IOError naming the path and the reason: missing, bad magic,
// truncated, trailing bytes.
IdxImages read_idx_images(const std::string& path);
std::vector<uint8_t> read_idx_labels(const std::string& path);

struct FashionMnist {
  IdxImages images;             // 28 x 28, 0..255
  std::vector<uint8_t> labels;  // 0..9
  int64_t size() const { return images.count; }
};

// split "train" (60000) or "test" (10000), from `dir` (default fashion_mnist_dir()):
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, each with or without ".gz". Checks that images
// and labels agree in count and that labels are 0..9.
FashionMnist load_fashion_mnist(const std::string& split, const std::string& dir = "");
// True when both files of `split` are present (with or without .gz).
bool fashion_mnist_available(const std::string& split, const std::string& dir = "");

struct TwoViewSample {
  std::vector<float> view1, view2;  // 28 x 28, in [0, 1]
  int label = 0;
  double angle = 0;      // view 1's rotation, degrees
  int64_t partner = -1;  // index of the image view 2 was made from
};

// The two-view variant: sample i is a pure function of (data, seed, i).
//   view 1 = image i scaled to [0, 1], rotated by an angle drawn uniformly in [-45, 45] degrees
//            (bilinear, about the centre, zero fill);
//   view 2 = another image of the same class (uniform among that class's other images), scaled
//            to [0, 1], plus noise drawn uniformly in [0, 1) per pixel, clipped to 1.
class TwoViewFashionMnist {
 public:
  TwoViewFashionMnist(FashionMnist data, uint64_t seed);
  int64_t size() const { return data_.size(); }
  TwoViewSample sample(int64_t index) const;
  const FashionMnist& data() const { return data_; }

 private:
  FashionMnist data_;
  uint64_t seed_;
  std::vector<std::vector<int64_t>> by_class_;
};

}  // namespace mmfuse::datasets
