// Raster images and PNG writing: the pixel buffer that datasets/ decodes into, and the
// project's one PNG encoder: 8-bit images through stb_image_write, 16-bit images with a small
// encoder of our own (stb_image_write only writes 8-bit samples). It lives in core/ so that
// core code encodes images (the PNG bytes a report page embeds, core/html_report.h) without
// including datasets/ (an upward include); datasets/image.h names these as datasets::Image,
// datasets::encode_png and datasets::write_png.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mmfuse {

// A raster of 8- or 16-bit samples, HWC, row-major.
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

// Writes `image` as PNG: 8-bit images (1-4 channels) through stb_image_write, 16-bit images
// (1-4 channels) with our own encoder. Values of an 8-bit image must be <= 255. Throws IOError
// when the file cannot be written.
void write_png(const std::string& path, const Image& image);
// The PNG bytes of `image` (both depths).
std::vector<uint8_t> encode_png(const Image& image);

}  // namespace mmfuse
