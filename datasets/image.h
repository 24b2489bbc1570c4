// Image decoding and PNG writing (stb_image / stb_image_write, plus a small 16-bit PNG encoder:
// stb_image_write only writes 8-bit samples). Pixels are kept at their file depth: 8-bit files
// give values 0..255, 16-bit PNGs (depth maps) keep all 16 bits. Layout HWC, row-major.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmfuse::datasets {

struct Image {
  int width = 0, height = 0, channels = 0;
  int bits = 8;                  // 8 or 16: the sample depth of the file it came from / goes to
  std::vector<uint16_t> pixels;  // height * width * channels, HWC

  Image() = default;
  Image(int width, int height, int channels, int bits = 8)
      : width(width), height(height), channels(channels), bits(bits),
        pixels(static_cast<size_t>(width) * height * channels, 0) {}
  size_t index(int y, int x, int c = 0) const {
    return (static_cast<size_t>(y) * width + x) * channels + c;
  }
  uint16_t& at(int y, int x, int c = 0) { return pixels[index(y, x, c)]; }
  uint16_t at(int y, int x, int c = 0) const { return pixels[index(y, x, c)]; }
  bool empty() const { return pixels.empty(); }
};

// Decodes a PNG (8- or 16-bit; gray, gray+alpha, RGB, RGBA, palette expanded to RGB/RGBA), JPEG,
// BMP or PNM file. `channels` = 0 keeps the file's channel count; 1..4 converts as stb_image
// does (gray replicated, alpha dropped or set opaque). Throws IOError naming the path and the
// reason: the file is missing/unreadable, or stb_image cannot decode it.
Image load_image(const std::string& path, int channels = 0);
// The same from bytes in memory; `name` is used in error messages.
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name, int channels = 0);

// An image's size and depth from its header, without decoding the pixels, after the same
// checks of the bytes as decode_image (use these, not stb_image's stbi_info: see image.cpp).
// Throws IOError when the bytes are no image decode_image could read.
struct ImageInfo {
  int width = 0, height = 0, channels = 0;
  int bits = 8;
};
ImageInfo image_info(const std::vector<uint8_t>& bytes, const std::string& name);
ImageInfo read_image_info(const std::string& path);

// A label map: a single-channel (gray) 8- or 16-bit PNG whose values are class indices. Throws
// IOError for a colour (e.g. palette) label file, whose indices stb_image cannot recover.
Image load_label(const std::string& path);

// Writes `image` as PNG: 8-bit images (1-4 channels) through stb_image_write, 16-bit images
// (1-4 channels) with our own encoder. Values of an 8-bit image must be <= 255. Throws IOError
// when the file cannot be written.
void write_png(const std::string& path, const Image& image);
// The PNG bytes of `image` (both depths).
std::vector<uint8_t> encode_png(const Image& image);

// Reads a whole file; IOError naming the path and errno's reason when it cannot.
std::vector<uint8_t> read_file(const std::string& path);

}  // namespace mmfuse::datasets
