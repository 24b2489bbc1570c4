#include "datasets/image.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <tuple>

#include "base/error.h"
#include "stb/stb_image.h"

namespace mmfuse::datasets {

namespace {
struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

// stb_image's channel conversion (stbi__convert_format16): gray is replicated, alpha dropped or
// set opaque, colour to gray by its integer luma (77 R + 150 G + 29 B) / 256.
void convert_channels(const uint16_t* src, int from, uint16_t* dst, int to, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i, src += from, dst += to) {
    const bool colour = from >= 3, alpha = from == 2 || from == 4;
    const uint16_t gray = colour ? static_cast<uint16_t>((src[0] * 77 + src[1] * 150 + src[2] * 29) >> 8) : src[0];
    for (int c = 0; c < std::min(to, 3); ++c) dst[c] = to <= 2 ? gray : colour ? src[c] : src[0];
    if (to == 2 || to == 4) dst[to - 1] = alpha ? src[from - 1] : 0xffff;
  }
}

// Binary PGM and PPM (P5, P6) as the Netpbm format defines them, in place of stb_image 2.27's
// reader: it reads 16-bit samples in the wrong byte order, converts their channels with its
// 8-bit routine (reading past its buffer) and accepts a truncated file, leaving pixels
// uninitialised. Samples are kept as stored, not scaled to maxval (as stb_image does): 8-bit
// when maxval < 256, else 16-bit big-endian.
bool is_binary_pnm(const std::vector<uint8_t>& b) {
  return b.size() >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6');
}

struct PnmHeader {
  ImageInfo info;
  size_t pixels_at = 0;  // where the samples start
};

PnmHeader read_pnm_header(const std::vector<uint8_t>& bytes, const std::string& name) {
  auto fail = [&](const std::string& why) { throw IOError("cannot decode image '" + name + "': " + why); };
  size_t at = 2;
  auto number = [&](const char* what, int64_t max) {
    while (at < bytes.size() && (std::isspace(bytes[at]) || bytes[at] == '#'))
      if (bytes[at] == '#') {
        while (at < bytes.size() && bytes[at] != '\n' && bytes[at] != '\r') ++at;
      } else {
        ++at;
      }
    if (at >= bytes.size() || !std::isdigit(bytes[at])) fail(std::string("the PNM header lacks its ") + what);
    int64_t value = 0;
    for (; at < bytes.size() && std::isdigit(bytes[at]); ++at)
      if ((value = value * 10 + (bytes[at] - '0')) > max)
        fail(std::string("PNM ") + what + " is larger than " + std::to_string(max));
    if (value == 0) fail(std::string("PNM ") + what + " is 0");
    return static_cast<int>(value);
  };
  PnmHeader header;
  ImageInfo& info = header.info;
  info.width = number("width", 1 << 24);
  info.height = number("height", 1 << 24);
  info.bits = number("maxval", 65535) < 256 ? 8 : 16;
  info.channels = bytes[1] == '5' ? 1 : 3;
  if (at >= bytes.size() || !std::isspace(bytes[at])) fail("no whitespace after the PNM maxval");
  header.pixels_at = at + 1;
  const uint64_t needed = static_cast<uint64_t>(info.width) * static_cast<uint64_t>(info.height) *
                          static_cast<uint64_t>(info.channels * info.bits / 8);
  const uint64_t available = bytes.size() - header.pixels_at;
  if (available < needed)
    fail("the PNM is truncated: " + std::to_string(available) + " bytes of pixels, " + std::to_string(info.width) +
         "x" + std::to_string(info.height) + "x" + std::to_string(info.channels) + " needs " + std::to_string(needed));
  return header;
}

Image decode_pnm(const std::vector<uint8_t>& bytes, const std::string& name, int channels) {
  const PnmHeader header = read_pnm_header(bytes, name);
  const ImageInfo& info = header.info;
  const size_t pixels = static_cast<size_t>(info.width) * static_cast<size_t>(info.height);
  std::vector<uint16_t> stored(pixels * static_cast<size_t>(info.channels));
  const uint8_t* p = bytes.data() + header.pixels_at;
  for (size_t i = 0; i < stored.size(); ++i)
    stored[i] = info.bits == 8 ? p[i] : static_cast<uint16_t>(p[2 * i] << 8 | p[2 * i + 1]);
  Image image(info.width, info.height, channels ? channels : info.channels, info.bits);
  convert_channels(stored.data(), info.channels, image.pixels.data(), image.channels, pixels);
  return image;
}

// Checks for faults of stb_image (third_party/stb), refused here as an IOError before
// stb_image sees the bytes:
//  - a JPEG Huffman table (DHT) of more than 256 codes is built past the end of its array
//    (2.27; fixed upstream in 2.28);
//  - a JPEG scan that decodes with a Huffman table no DHT segment defined before it reads the
//    decoder's uninitialised memory: a wild index or a failed assertion (2.27 to 2.30);
//  - a BMP shorter than its pixel rows decodes anyway, the missing rows black (a 95-byte file
//    can declare 3 x 16 million pixels; 2.27, fixed in 2.28).
void check_jpeg_huffman_tables(const std::vector<uint8_t>& b, const std::string& name) {
  if (b.empty() || b[0] != 0xFF) return;  // stb_image's JPEG test: FF, any fill bytes FF, D8
  // stb_image reads a byte past the end of the file as 0.
  auto byte = [&](size_t i) -> unsigned { return i < b.size() ? b[i] : 0; };
  bool defined[2][4] = {};  // [DC, AC][table id]
  bool progressive = false;
  // Markers as a decoder finds them: segments carry a length; between them, after a scan
  // header, entropy-coded bytes with stuffed FF 00 and RSTn markers.
  for (size_t at = 0; at + 4 <= b.size();) {
    const uint8_t marker = b[at + 1];
    if (b[at] != 0xFF || marker == 0xFF) {
      ++at;
    } else if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {
      at += 2;
    } else if (marker == 0xD9) {
      return;
    } else {
      const size_t length = static_cast<size_t>(b[at + 2]) << 8 | b[at + 3];
      if (marker == 0xC0 || marker == 0xC1 || marker == 0xC2) progressive = marker == 0xC2;  // the frame
      if (marker == 0xC4) {  // tables: class/id byte, 16 counts, the symbols
        for (size_t table = at + 4; table < at + 2 + length && table < b.size();) {
          size_t codes = 0;
          for (size_t i = table + 1; i <= table + 16; ++i) codes += byte(i);
          MMF_CHECK(codes <= 256, IOError, "cannot decode image '", name, "': corrupt JPEG (a Huffman table of ",
                    codes, " codes; at most 256)");
          const unsigned kind = b[table] >> 4, id = b[table] & 15;
          if (kind < 2 && id < 4) defined[kind][id] = true;  // stb_image refuses the others
          table += 17 + codes;
        }
      }
      if (marker == 0xDA) {  // a scan: component count, (component, DC id << 4 | AC id) each, Ss, Se, Ah Al
        const size_t n = byte(at + 4), spectral_start = byte(at + 5 + 2 * n), high_bit = byte(at + 7 + 2 * n) >> 4;
        // Progressive scans decode the DC coefficients (first pass only) or the AC ones.
        const bool dc = !progressive || (spectral_start == 0 && high_bit == 0), ac = !progressive || spectral_start > 0;
        for (size_t i = 0; i < n && i < 4; ++i) {
          const unsigned ids = byte(at + 6 + 2 * i);
          for (auto [used, kind, id] : {std::tuple{dc, 0u, ids >> 4}, {ac, 1u, ids & 15}})
            MMF_CHECK(!used || id > 3 || defined[kind][id], IOError, "cannot decode image '", name,
                      "': corrupt JPEG (a scan decodes with ", kind ? "AC" : "DC", " Huffman table ", id,
                      ", which no DHT segment before it defines)");
        }
      }
      at += 2 + length;
    }
  }
}

void check_bmp_size(const std::vector<uint8_t>& b, const std::string& name) {
  if (b.size() < 30 || b[0] != 'B' || b[1] != 'M') return;
  auto u16 = [&](size_t at) { return static_cast<uint32_t>(b[at] | b[at + 1] << 8); };
  auto u32 = [&](size_t at) { return u16(at) | u16(at + 2) << 16; };
  const uint32_t offset = u32(10), header = u32(14);
  // As stb_image reads them: the old 12-byte header has unsigned 16-bit sizes; a negative
  // height is a top-down image; a negative width, no bits or a side over 2^24 it refuses itself.
  const int64_t width = header == 12 ? u16(18) : static_cast<int32_t>(u32(18));
  const int64_t height = header == 12 ? u16(20) : std::abs(static_cast<int64_t>(static_cast<int32_t>(u32(22))));
  const uint32_t bits = header == 12 ? u16(24) : u16(28);
  // stb_image refuses a side over 2^24 itself, but negates a height of -2^31 first (undefined).
  MMF_CHECK(std::abs(width) <= (1 << 24) && height <= (1 << 24), IOError, "cannot decode image '", name,
            "': the BMP declares ", width, "x", height, " pixels (at most 16777216 a side)");
  if (width <= 0 || bits == 0 || bits > 32) return;
  const uint64_t row_bytes = (static_cast<uint64_t>(width) * bits + 31) / 32 * 4;
  const uint64_t needed = offset + row_bytes * static_cast<uint64_t>(height);
  MMF_CHECK(b.size() >= needed, IOError, "cannot decode image '", name, "': the BMP is truncated: ", b.size(),
            " bytes, its ", width, "x", height, " pixels of ", bits, " bits end at byte ", needed);
}

// stb_image 2.27 decodes a BMP of height 0 (or a width of 0) as an image without pixels.
void check_size(int width, int height, const std::string& name) {
  MMF_CHECK(width > 0 && height > 0, IOError, "cannot decode image '", name, "': it has no pixels (", width, "x",
            height, ")");
}

// What every decode starts with; false for a PNM, which is read here, not by stb_image.
bool check_for_stb(const std::vector<uint8_t>& bytes, const std::string& name) {
  MMF_CHECK(!bytes.empty(), IOError, "cannot decode image '", name, "': the file is empty");
  MMF_CHECK(bytes.size() <= static_cast<size_t>(INT_MAX), IOError, "cannot decode image '", name,
            "': the file is larger than 2 GiB");
  if (is_binary_pnm(bytes)) return false;
  check_jpeg_huffman_tables(bytes, name);
  check_bmp_size(bytes, name);
  return true;
}
}  // namespace

std::vector<uint8_t> read_file(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  MMF_CHECK(f, IOError, "cannot open '", path, "': ", std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f.get())) > 0) bytes.insert(bytes.end(), buffer, buffer + n);
  MMF_CHECK(!std::ferror(f.get()), IOError, "cannot read '", path, "': ", std::strerror(errno));
  return bytes;
}

ImageInfo image_info(const std::vector<uint8_t>& bytes, const std::string& name) {
  if (!check_for_stb(bytes, name)) return read_pnm_header(bytes, name).info;
  ImageInfo info;
  const int len = static_cast<int>(bytes.size());
  MMF_CHECK(stbi_info_from_memory(bytes.data(), len, &info.width, &info.height, &info.channels), IOError,
            "cannot decode image '", name, "': ", stbi_failure_reason());
  info.bits = stbi_is_16_bit_from_memory(bytes.data(), len) ? 16 : 8;
  check_size(info.width, info.height, name);
  return info;
}

ImageInfo read_image_info(const std::string& path) { return image_info(read_file(path), path); }

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name, int channels) {
  MMF_CHECK(channels >= 0 && channels <= 4, IOError, "decode_image: channels must be 0..4, got ", channels,
            " (for '", name, "')");
  if (!check_for_stb(bytes, name)) return decode_pnm(bytes, name, channels);
  const auto* data = bytes.data();
  int len = static_cast<int>(bytes.size()), w = 0, h = 0, file_channels = 0;
  Image image;
  if (stbi_is_16_bit_from_memory(data, len)) {
    std::unique_ptr<stbi_us, void (*)(void*)> p(
        stbi_load_16_from_memory(data, len, &w, &h, &file_channels, channels), &stbi_image_free);
    MMF_CHECK(p, IOError, "cannot decode image '", name, "': ", stbi_failure_reason());
    check_size(w, h, name);
    image = Image(w, h, channels ? channels : file_channels, 16);
    std::memcpy(image.pixels.data(), p.get(), image.pixels.size() * sizeof(uint16_t));
  } else {
    std::unique_ptr<stbi_uc, void (*)(void*)> p(
        stbi_load_from_memory(data, len, &w, &h, &file_channels, channels), &stbi_image_free);
    MMF_CHECK(p, IOError, "cannot decode image '", name, "': ", stbi_failure_reason());
    check_size(w, h, name);
    image = Image(w, h, channels ? channels : file_channels, 8);
    for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = p.get()[i];
  }
  return image;
}

Image load_image(const std::string& path, int channels) { return decode_image(read_file(path), path, channels); }

Image load_label(const std::string& path) {
  Image label = load_image(path);
  MMF_CHECK(label.channels == 1, IOError, "label image '", path, "' has ", label.channels,
            " channels; labels must be single-channel (gray) PNGs whose values are class indices");
  return label;
}

}  // namespace mmfuse::datasets
