// Image decoding (stb_image) and PNG writing. Pixels are kept at their file depth: 8-bit files
// give values 0..255, 16-bit PNGs (depth maps) keep all 16 bits. Layout HWC, row-major. The
// pixel buffer Image and the PNG writer live in core/png.h (core encodes PNGs too, and core
// may not include datasets/); datasets:: names them as its own.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/png.h"

namespace mmfuse::datasets {

using mmfuse::Image;
using mmfuse::encode_png;
using mmfuse::write_png;

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

// Reads a whole file; IOError naming the path and errno's reason when it cannot.
std::vector<uint8_t> read_file(const std::string& path);

}  // namespace mmfuse::datasets
