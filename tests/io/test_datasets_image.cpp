// Image decoding and PNG writing, list files, and the rotation transform.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "base/error.h"
#include "core/random.h"
#include "datasets/image.h"
#include "datasets/list_file.h"
#include "datasets/transforms.h"
#include "doctest/doctest.h"
#include "tests/temp_dir.h"
#include "stb/stb_image_write.h"

using namespace mmfuse;
using namespace mmfuse::datasets;
using mmfuse::testing::TempDir;

namespace {


Image random_image(int w, int h, int c, int bits, uint64_t seed) {
  Generator gen(seed);
  Image im(w, h, c, bits);
  for (auto& v : im.pixels) v = static_cast<uint16_t>(gen.below(bits == 16 ? 65536 : 256));
  return im;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace

TEST_CASE("PNG round trip keeps every value: 8-bit gray/RGB/RGBA, 16-bit gray and RGB") {
  TempDir dir("png");
  struct Case { int w, h, c, bits; };
  for (Case k : {Case{7, 5, 1, 8}, Case{5, 3, 3, 8}, Case{3, 7, 4, 8}, Case{9, 5, 1, 16}, Case{3, 5, 3, 16}}) {
    CAPTURE(k.c);
    CAPTURE(k.bits);
    Image im = random_image(k.w, k.h, k.c, k.bits, 100 + k.c + k.bits);
    std::string path = dir / ("im" + std::to_string(k.c) + "_" + std::to_string(k.bits) + ".png");
    write_png(path, im);
    Image back = load_image(path);
    CHECK(back.width == k.w);
    CHECK(back.height == k.h);
    CHECK(back.channels == k.c);
    CHECK(back.bits == k.bits);
    CHECK(back.pixels == im.pixels);
  }
}

TEST_CASE("16-bit PNG: values above 255 survive, hand-made pixels") {
  TempDir dir("png16");
  Image depth(3, 2, 1, 16);
  depth.pixels = {0, 1, 255, 256, 4097, 65535};
  write_png(dir / "d.png", depth);
  Image back = load_image(dir / "d.png");
  CHECK(back.bits == 16);
  CHECK(back.pixels == std::vector<uint16_t>{0, 1, 255, 256, 4097, 65535});
  CHECK(back.at(1, 1) == 4097);
  Image label = load_label(dir / "d.png");  // gray 16-bit is a valid label map
  CHECK(label.pixels == back.pixels);
}

TEST_CASE("channel conversion on load and label checks") {
  TempDir dir("conv");
  Image rgb(2, 1, 3, 8);
  rgb.pixels = {10, 20, 30, 200, 100, 0};
  write_png(dir / "rgb.png", rgb);
  Image rgba = load_image(dir / "rgb.png", 4);
  CHECK(rgba.channels == 4);
  CHECK(rgba.pixels == std::vector<uint16_t>{10, 20, 30, 255, 200, 100, 0, 255});
  CHECK_THROWS_WITH_AS(load_label(dir / "rgb.png"), doctest::Contains("rgb.png' has 3 channels"), IOError);
  Image gray(2, 2, 1, 8);
  gray.pixels = {0, 3, 255, 7};
  write_png(dir / "g.png", gray);
  CHECK(load_label(dir / "g.png").pixels == gray.pixels);
  CHECK(load_image(dir / "g.png", 3).pixels == std::vector<uint16_t>{0, 0, 0, 3, 3, 3, 255, 255, 255, 7, 7, 7});
}

TEST_CASE("JPEG decodes (8-bit RGB and gray), content sniffed rather than trusted to the extension") {
  TempDir dir("jpg");
  // A flat colour survives JPEG compression within a few levels.
  std::vector<uint8_t> flat(16 * 8 * 3);
  for (size_t i = 0; i < flat.size(); ++i) flat[i] = i % 3 == 0 ? 200 : (i % 3 == 1 ? 100 : 50);
  REQUIRE(stbi_write_jpg((dir / "a.jpg").c_str(), 16, 8, 3, flat.data(), 95));
  Image im = load_image(dir / "a.jpg");
  CHECK(im.width == 16);
  CHECK(im.height == 8);
  CHECK(im.channels == 3);
  CHECK(im.bits == 8);
  for (size_t i = 0; i < flat.size(); ++i) REQUIRE(std::abs(int(im.pixels[i]) - int(flat[i])) <= 4);
  Image gray = load_image(dir / "a.jpg", 1);
  CHECK(gray.channels == 1);
  // A PNG named .jpg still decodes: stb_image looks at the content.
  Image png(2, 2, 1, 8);
  png.pixels = {1, 2, 3, 4};
  write_png(dir / "b.jpg", png);
  CHECK(load_image(dir / "b.jpg").pixels == png.pixels);
}

TEST_CASE("missing, empty and corrupt files give IOError with the path") {
  TempDir dir("bad");
  CHECK_THROWS_WITH_AS(load_image(dir / "nope.png"),
                       doctest::Contains(("cannot open '" + (dir / "nope.png") + "': No such file").c_str()), IOError);
  write_bytes(dir / "empty.png", {});
  CHECK_THROWS_WITH_AS(load_image(dir / "empty.png"), doctest::Contains("empty.png': the file is empty"), IOError);
  Generator gen(5);
  std::vector<uint8_t> noise(300);
  for (auto& b : noise) b = static_cast<uint8_t>(gen.below(256));
  write_bytes(dir / "noise.png", noise);
  CHECK_THROWS_WITH_AS(load_image(dir / "noise.png"), doctest::Contains(("cannot decode image '" + (dir / "noise.png") + "': ").c_str()),
                       IOError);
  // A real PNG cut in half: stb_image reports the reason.
  std::vector<uint8_t> png = encode_png(random_image(16, 16, 3, 8, 9));
  png.resize(png.size() / 2);
  write_bytes(dir / "cut.png", png);
  CHECK_THROWS_WITH_AS(load_image(dir / "cut.png"), doctest::Contains("cut.png': "), IOError);
  Image bad(2, 2, 1, 8);
  bad.pixels[0] = 256;
  CHECK_THROWS_WITH_AS(write_png(dir / "x.png", bad), doctest::Contains("value 256 (> 255)"), IOError);
  CHECK_THROWS_WITH_AS(write_png(dir / "no/such/dir/x.png", Image(2, 2, 1)), doctest::Contains("no/such/dir/x.png"),
                       IOError);
}

TEST_CASE("list files: segmentation and classification lines, errors with file:line") {
  TempDir dir("list");
  {
    std::ofstream(dir / "seg.txt") << "# rgb depth label\nrgb/0.png depth/0.png label/0.png\n\n"
                                   << "  rgb/1.png\tdepth/1.png   label/1.png  \n/abs/r.png /abs/d.png /abs/l.png\n";
    std::ofstream(dir / "cls.txt") << "a.png b.png 3\nc.png d.png 0\n";
    std::ofstream(dir / "bad.txt") << "a.png b.png 3\nc.png 0\n";
  }
  auto seg = read_list_file(dir / "seg.txt", 2);
  REQUIRE(seg.size() == 3);
  CHECK(seg[0].paths == std::vector<std::string>{dir / "rgb/0.png", dir / "depth/0.png"});
  CHECK(seg[0].label_path == dir / "label/0.png");
  CHECK(seg[0].class_index == -1);
  CHECK(seg[0].line == 2);
  CHECK(seg[1].line == 4);
  CHECK(seg[2].paths[0] == "/abs/r.png");
  auto cls = read_list_file(dir / "cls.txt", 2, "/data");
  REQUIRE(cls.size() == 2);
  CHECK(cls[0].class_index == 3);
  CHECK(cls[1].class_index == 0);
  CHECK(cls[0].paths[1] == "/data/b.png");
  CHECK(cls[0].label_path.empty());
  CHECK_THROWS_WITH_AS(read_list_file(dir / "bad.txt", 2), doctest::Contains("bad.txt:2: expected 2 paths and a label"),
                       IOError);
  CHECK_THROWS_WITH_AS(read_list_file(dir / "none.txt", 2), doctest::Contains("none.txt"), IOError);
}

TEST_CASE("rotate_bilinear: 90 degrees counter-clockwise, identity, zero fill") {
  // 3x3 with a single bright pixel right of the centre: after +90 degrees it is above the centre.
  std::vector<float> im(9, 0.0f);
  im[1 * 3 + 2] = 1.0f;
  auto r = rotate_bilinear(im, 3, 3, 1, 90.0);
  for (int i = 0; i < 9; ++i) CHECK(r[i] == doctest::Approx(i == 0 * 3 + 1 ? 1.0 : 0.0).epsilon(1e-6));
  auto same = rotate_bilinear(im, 3, 3, 1, 0.0);
  CHECK(same == im);
  // 45 degrees on a 7x7 of ones (centre (3, 3)): a corner maps fully outside the source (zero
  // fill); pixel (x 0, y 1) maps to (3 - 0.5 sqrt 2, 3 - 2.5 sqrt 2), between source rows -1 and
  // 0, so bilinear gives the weight of row 0: 4 - 2.5 sqrt 2. The centre stays 1.
  std::vector<float> ones(49, 1.0f);
  auto q = rotate_bilinear(ones, 7, 7, 1, 45.0);
  CHECK(q[0] == 0.0f);
  CHECK(q[1 * 7 + 0] == doctest::Approx(4 - 2.5 * std::sqrt(2.0)).epsilon(1e-5));
  CHECK(q[3 * 7 + 3] == doctest::Approx(1.0));
  CHECK(q[3 * 7 + 0] == doctest::Approx(1.0));
  CHECK_THROWS_AS(rotate_bilinear(ones, 3, 3, 1, 10.0), Error);
}
