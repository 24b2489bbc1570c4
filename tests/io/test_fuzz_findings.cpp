// What the fuzzers of tests/fuzz found in the readers of untrusted bytes, one case per finding
// (docs/reliability.md, "Sanitizers and fuzzing"). Each input is also in the fuzzer's seed
// corpus, which the CI fuzz run replays under ASan + UBSan.
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "datasets/image.h"
#include "doctest/doctest.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
using namespace mmfuse::datasets;

namespace {

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

}  // namespace

TEST_CASE("fuzz_image: a 16-bit PGM converted to 3 channels (stb_image 2.27 read past its buffer)") {
  // tests/fuzz/corpus/image/gray16.pgm: 3x2, samples 0, 1000, 65535 / 300, 40000, 7 (big-endian).
  std::string pgm = "P5\n3 2\n65535\n";
  for (int v : {0, 1000, 65535, 300, 40000, 7}) pgm += {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)};
  const std::vector<uint16_t> gray = {0, 1000, 65535, 300, 40000, 7};
  Image one = decode_image(bytes_of(pgm), "gray16.pgm");
  CHECK(one.bits == 16);
  CHECK(one.pixels == gray);
  Image three = decode_image(bytes_of(pgm), "gray16.pgm", 3);
  REQUIRE(three.channels == 3);
  CHECK(three.bits == 16);
  for (size_t i = 0; i < gray.size(); ++i)
    for (int c = 0; c < 3; ++c) CHECK(three.pixels[3 * i + c] == gray[i]);
  Image four = decode_image(bytes_of(pgm), "gray16.pgm", 4);
  CHECK(four.pixels[3] == 65535);  // opaque
  CHECK(four.pixels[4 * 5 + 2] == 7);
  // A 16-bit colour PPM to gray and gray + alpha: stb_image's integer luma.
  std::string ppm = "P6\n1 1\n65535\n";
  for (int v : {1000, 2000, 3000}) ppm += {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)};
  const uint16_t luma = (1000 * 77 + 2000 * 150 + 3000 * 29) >> 8;
  CHECK(decode_image(bytes_of(ppm), "rgb16.ppm", 1).pixels == std::vector<uint16_t>{luma});
  CHECK(decode_image(bytes_of(ppm), "rgb16.ppm", 2).pixels == std::vector<uint16_t>{luma, 65535});
}

TEST_CASE("fuzz_image: a truncated PNM is an error, not an image of uninitialised pixels") {
  std::string pgm = "P5\n4 4\n255\n0123456789";  // 10 of 16 bytes
  CHECK_THROWS_WITH_AS(decode_image(bytes_of(pgm), "cut.pgm"),
                       "cannot decode image 'cut.pgm': the PNM is truncated: 10 bytes of pixels, 4x4x1 needs 16",
                       IOError);
  CHECK_THROWS_AS(decode_image(bytes_of("P6\n# no size\n"), "x.ppm"), IOError);
  CHECK_THROWS_AS(decode_image(bytes_of("P5 2 2 65536\n"), "x.pgm"), IOError);
  CHECK_THROWS_AS(decode_image(bytes_of("P5 2 0 255\n"), "x.pgm"), IOError);
  // 8-bit, a comment in the header, as stb_image read it: samples as stored.
  Image ok = decode_image(bytes_of("P5 # c\n2 1 100\n\x05\x63"), "ok.pgm");
  CHECK(ok.bits == 8);
  CHECK(ok.pixels == std::vector<uint16_t>{5, 99});
}

namespace {
std::vector<uint8_t> corpus_file(const std::string& name) {
  return read_file((mmfuse::testing::source_root() / "tests" / "fuzz" / "corpus" / "image" / name).string());
}
}  // namespace

TEST_CASE("fuzz_image: a JPEG Huffman table of 1031 codes (stb_image 2.27 wrote past its array)") {
  CHECK_THROWS_WITH_AS(decode_image(corpus_file("finding-jpeg-dht-1031-codes.jpg"), "dht.jpg"),
                       "cannot decode image 'dht.jpg': corrupt JPEG (a Huffman table of 1031 codes; at most 256)",
                       IOError);
  // The seed it came from still decodes.
  Image seed = decode_image(corpus_file("rgb_q90.jpg"), "rgb_q90.jpg");
  CHECK(seed.width == 16);
  CHECK(seed.channels == 3);
}

TEST_CASE("fuzz_image: a JPEG scan decoding with a Huffman table no DHT defines (stb_image read its heap)") {
  // The scan names DC table 2 and AC table 3 for its second component; the file defines tables
  // 0 and 1 only. stb_image 2.27-2.30 decoded with the uninitialised table: an index of
  // -16,776,670 under the sanitizers, a failed assertion in a CI run.
  CHECK_THROWS_WITH_AS(decode_image(corpus_file("finding-jpeg-scan-undefined-table.jpg"), "scan.jpg"),
                       "cannot decode image 'scan.jpg': corrupt JPEG (a scan decodes with DC Huffman table 2, which "
                       "no DHT segment before it defines)",
                       IOError);
  // Progressive JPEGs define tables between scans, and their DC scans name AC tables they do not
  // use: still decoded, to the same pixels as the baseline files jpegtran made them from.
  for (const char* name : {"rgb_q90", "gray"}) {
    INFO(name);
    Image baseline = decode_image(corpus_file(std::string(name) + ".jpg"), "baseline.jpg");
    Image progressive = decode_image(corpus_file(std::string(name) + "_progressive.jpg"), "progressive.jpg");
    CHECK(progressive.width == baseline.width);
    CHECK(progressive.channels == baseline.channels);
    CHECK(progressive.pixels == baseline.pixels);
  }
}

TEST_CASE("fuzz_image: a 95-byte BMP declaring 3 x 16 million pixels (stb_image 2.27 decoded it, rows black)") {
  CHECK_THROWS_WITH_AS(decode_image(corpus_file("finding-bmp-truncated-3x16m.bmp"), "cut.bmp"),
                       "cannot decode image 'cut.bmp': the BMP is truncated: 95 bytes, its 3x16187137 pixels of "
                       "24 bits end at byte 194245698",
                       IOError);
  Image seed = decode_image(corpus_file("rgb24.bmp"), "rgb24.bmp");
  CHECK(seed.width == 3);
  CHECK(seed.height == 2);
}

TEST_CASE("fuzz_image: a Huffman table cut short by the end of the file (stb_image reads the rest as 0)") {
  CHECK_THROWS_WITH_AS(decode_image(corpus_file("finding-jpeg-dht-cut-short.jpg"), "cut.jpg"),
                       "cannot decode image 'cut.jpg': corrupt JPEG (a Huffman table of 627 codes; at most 256)",
                       IOError);
}

TEST_CASE("fuzz_image: the same behind fill bytes (FF FF ... D8 is a JPEG to stb_image)") {
  CHECK_THROWS_WITH_AS(decode_image(corpus_file("finding-jpeg-dht-after-fill-bytes.jpg"), "fill.jpg"),
                       "cannot decode image 'fill.jpg': corrupt JPEG (a Huffman table of 817 codes; at most 256)",
                       IOError);
}

TEST_CASE("fuzz_image: a BMP of height -2^31 (stb_image negated it: undefined behaviour)") {
  CHECK_THROWS_WITH_AS(decode_image(corpus_file("finding-bmp-height-min-int.bmp"), "tall.bmp"),
                       "cannot decode image 'tall.bmp': the BMP declares 3x2147483648 pixels (at most 16777216 a side)",
                       IOError);
}

TEST_CASE("fuzz_image: a BMP of width 0 (stb_image 2.27 gave an image without pixels)") {
  CHECK_THROWS_WITH_AS(decode_image(corpus_file("finding-bmp-no-pixels.bmp"), "empty.bmp"),
                       "cannot decode image 'empty.bmp': it has no pixels (0x121)", IOError);
  CHECK_THROWS_AS(image_info(corpus_file("finding-bmp-no-pixels.bmp"), "empty.bmp"), IOError);
}

TEST_CASE("image_info: the header after decode_image's checks (the data layer's stbi_info had none)") {
  ImageInfo jpeg = image_info(corpus_file("rgb_q90.jpg"), "rgb_q90.jpg");
  CHECK(jpeg.width == 16);
  CHECK(jpeg.height == 12);
  CHECK(jpeg.channels == 3);
  CHECK(jpeg.bits == 8);
  ImageInfo pgm = image_info(corpus_file("gray16.pgm"), "gray16.pgm");
  CHECK(pgm.width == 3);
  CHECK(pgm.channels == 1);
  CHECK(pgm.bits == 16);
  CHECK(image_info(corpus_file("rgb16.png"), "rgb16.png").bits == 16);
  // stbi_info builds the Huffman tables it meets before the frame header: a table of 2040 codes
  // there overflowed in stbi_info (the data layer's bit-depth check called it on every image).
  CHECK_THROWS_WITH_AS(image_info(corpus_file("finding-jpeg-dht-before-frame.jpg"), "early.jpg"),
                       "cannot decode image 'early.jpg': corrupt JPEG (a Huffman table of 2040 codes; at most 256)",
                       IOError);
  CHECK_THROWS_AS(image_info(corpus_file("finding-jpeg-dht-1031-codes.jpg"), "dht.jpg"), IOError);
}
