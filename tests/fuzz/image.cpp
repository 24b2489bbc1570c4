// Fuzzes image decoding (datasets/image.h): the bytes as a PNG (8/16-bit), JPEG, BMP or PNM
// file, their header read (image_info), then decoded with the file's channels, as gray and as
// RGB (what the data layers ask for). A decoded image must be as its header said, and
// re-encode as PNG.
//
// Left out: images that declare more than kMaxSamples samples. A JPEG may legitimately expand
// a few hundred bytes into hundreds of megabytes (stb_image fills missing data), which only
// slows the search down; a file format whose size is checked (PNM, BMP) is not affected.
#include "datasets/image.h"
#include "tests/fuzz/fuzz.h"

namespace {
constexpr int64_t kMaxSamples = int64_t{1} << 22;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmfuse;
  const std::vector<uint8_t> bytes(data, data + size);
  datasets::ImageInfo info;
  const bool header_ok = fuzz::expect_ok_or_error([&] { info = datasets::image_info(bytes, "fuzz.img"); });
  // In double: a BMP header may declare 2^31 x 2^31 pixels, whose product times 4 passes 2^63.
  if (header_ok && static_cast<double>(info.width) * info.height * 4 > static_cast<double>(kMaxSamples)) return 0;
  for (int channels : {0, 1, 3}) {
    datasets::Image image;
    if (!fuzz::expect_ok_or_error([&] { image = datasets::decode_image(bytes, "fuzz.img", channels); })) return 0;
    if (image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels ||
        (channels && image.channels != channels) || (image.bits != 8 && image.bits != 16))
      __builtin_trap();
    // As its header said, when that could be read.
    if (header_ok && (image.width != info.width || image.height != info.height || image.bits != info.bits ||
                      (!channels && image.channels != info.channels)))
      __builtin_trap();
    if (channels == 0 && image.pixels.size() <= (1 << 16)) datasets::encode_png(image);
  }
  return 0;
}
