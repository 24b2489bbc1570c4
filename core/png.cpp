#include "core/png.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/error.h"

// stb_image_write is compiled in this translation unit only; its own warnings are silenced
// here, so that the rest of the build stays -Wall -Wextra clean.
#include "base/stb_warnings.h"  // pushes; popped below
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "stb/stb_image_write.h"
#pragma GCC diagnostic pop

namespace mmfuse {

namespace {
struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;
}  // namespace

namespace {

void check_writable(const Image& image, const char* what) {
  MMF_CHECK(image.width > 0 && image.height > 0 && image.channels >= 1 && image.channels <= 4, IOError, what,
            ": cannot write a ", image.width, "x", image.height, "x", image.channels,
            " image as PNG (need a positive size and 1-4 channels)");
  MMF_CHECK(image.pixels.size() == static_cast<size_t>(image.width) * image.height * image.channels, IOError,
            what, ": image holds ", image.pixels.size(), " samples, expected ", image.width, "x", image.height,
            "x", image.channels);
  MMF_CHECK(image.bits == 8 || image.bits == 16, IOError, what, ": bits must be 8 or 16, got ", image.bits);
}

void append_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// One PNG chunk: length, type, data, CRC-32 of type + data (PNG spec section 5.3).
void append_chunk(std::vector<uint8_t>& out, const char type[4], const uint8_t* data, size_t size) {
  append_u32(out, static_cast<uint32_t>(size));
  size_t type_at = out.size();
  out.insert(out.end(), type, type + 4);
  if (size) out.insert(out.end(), data, data + size);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, out.data() + type_at, static_cast<uInt>(4 + size));
  append_u32(out, static_cast<uint32_t>(crc));
}

// 16-bit PNG: IHDR, one IDAT of the zlib stream of all rows (filter type 0 "None" per row,
// big-endian samples), IEND.
std::vector<uint8_t> encode_png16(const Image& image) {
  static const uint8_t colour_type[5] = {0, 0, 4, 2, 6};  // gray, gray+alpha, RGB, RGBA
  const size_t row_bytes = 1 + static_cast<size_t>(image.width) * image.channels * 2;
  std::vector<uint8_t> raw(row_bytes * image.height);
  for (int y = 0; y < image.height; ++y) {
    uint8_t* row = raw.data() + y * row_bytes;
    row[0] = 0;
    const uint16_t* src = image.pixels.data() + image.index(y, 0);
    for (size_t i = 0; i < static_cast<size_t>(image.width) * image.channels; ++i) {
      row[1 + 2 * i] = static_cast<uint8_t>(src[i] >> 8);
      row[2 + 2 * i] = static_cast<uint8_t>(src[i] & 0xff);
    }
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> packed(packed_size);
  int rc = compress2(packed.data(), &packed_size, raw.data(), static_cast<uLong>(raw.size()), 6);
  MMF_CHECK(rc == Z_OK, IOError, "encode_png: zlib compress2 failed (code ", rc, ")");

  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> header;
  append_u32(header, static_cast<uint32_t>(image.width));
  append_u32(header, static_cast<uint32_t>(image.height));
  header.insert(header.end(), {16, colour_type[image.channels], 0, 0, 0});  // depth, colour, deflate, filter, no interlace
  append_chunk(out, "IHDR", header.data(), header.size());
  append_chunk(out, "IDAT", packed.data(), packed_size);
  append_chunk(out, "IEND", nullptr, 0);
  return out;
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  auto* p = static_cast<uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

std::vector<uint8_t> encode_png8(const Image& image) {
  std::vector<uint8_t> samples(image.pixels.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    MMF_CHECK(image.pixels[i] <= 255, IOError, "encode_png: an 8-bit image holds the value ", image.pixels[i],
              " (> 255); set bits = 16 to write it");
    samples[i] = static_cast<uint8_t>(image.pixels[i]);
  }
  std::vector<uint8_t> out;
  int ok = stbi_write_png_to_func(append_bytes, &out, image.width, image.height, image.channels, samples.data(),
                                  image.width * image.channels);
  MMF_CHECK(ok, IOError, "encode_png: stb_image_write failed for a ", image.width, "x", image.height, "x",
            image.channels, " image");
  return out;
}

}  // namespace

std::vector<uint8_t> encode_png(const Image& image) {
  check_writable(image, "encode_png");
  return image.bits == 16 ? encode_png16(image) : encode_png8(image);
}

void write_png(const std::string& path, const Image& image) {
  std::vector<uint8_t> bytes = encode_png(image);
  File f(std::fopen(path.c_str(), "wb"));
  MMF_CHECK(f, IOError, "cannot write '", path, "': ", std::strerror(errno));
  size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f.get());
  MMF_CHECK(written == bytes.size(), IOError, "cannot write '", path, "': ", std::strerror(errno));
  MMF_CHECK(std::fclose(f.release()) == 0, IOError, "cannot write '", path, "': ", std::strerror(errno));
}

}  // namespace mmfuse
