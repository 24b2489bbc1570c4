// .npy I/O: round trips, files built byte by byte as numpy lays them out (versions 1.0, 2.0,
// 3.0), and every error naming the path and the reason.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/npy.h"
#include "tests/gradcheck.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
using mmfuse::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// A scratch folder, removed with everything in it at the end of the test.
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A .npy file as the format describes it: magic, version, header length (2 bytes in 1.0,
// 4 in 2.0 and 3.0), the dict padded with spaces to a 64-byte boundary, '\n', the data.
std::string npy_bytes(int major, const std::string& dict, const std::string& data) {
  size_t len_bytes = major == 1 ? 2 : 4;
  size_t prefix = 8 + len_bytes;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < len_bytes; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return out + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

}  // namespace

TEST_CASE("npy round trips every dtype, 0-d and empty arrays") {
  TempDir tmp("npy");
  std::string path = (tmp / "round.npy");
  Generator gen(7);
  for (DType dtype : {DType::f32, DType::f64, DType::i32, DType::i64, DType::u8}) {
    for (Shape shape : std::vector<Shape>{{3, 5}, {7}, {}, {0, 3}, {2, 1, 3}}) {
      Tensor t = Tensor::rand(shape, gen, 0, 200, DType::f64).to(dtype);
      save_npy(path, t);
      Tensor back = load_npy(path);
      INFO(t.str());
      CHECK(back.dtype() == dtype);
      CHECK(back.shape() == shape);
      CHECK(back.to_vector<double>() == t.to_vector<double>());
      CHECK(read_file(path).size() % 64 == t.nbytes() % 64);  // data starts 64-byte aligned
    }
  }
  // A view with an offset saves its own elements.
  Tensor rows = Tensor::arange(0, 12, 1, DType::i64).reshape({4, 3}).narrow(1, 2);
  save_npy(path, rows);
  CHECK(load_npy(path).to_vector<int64_t>() == std::vector<int64_t>{3, 4, 5, 6, 7, 8});
}

TEST_CASE("npy writer lays out the header bytes as numpy.save does") {
  TempDir tmp("npy");
  std::string path = (tmp / "layout.npy");
  save_npy(path, Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  // The dict, 20 spare spaces for the first dim (21 digits minus one), padding to 128, '\n'.
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + std::string(20, ' ');
  std::string expected = npy_bytes(1, dict, raw<float>({1, 2, 3, 4, 5, 6}));
  CHECK(read_file(path) == expected);
  CHECK(expected.size() == 128 + 24);
  save_npy(path, Tensor::scalar(2.5, DType::f64));
  CHECK(read_file(path) ==
        npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", raw<double>({2.5})));
  save_npy(path, Tensor::from_vector<uint8_t>({9}, {1}));
  CHECK(read_file(path) ==
        npy_bytes(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }" + std::string(20, ' '), "\x09"));
}

TEST_CASE("npy writer switches to version 2.0 when the header outgrows 65535 bytes") {
  TempDir tmp("npy");
  std::string path = (tmp / "v2.npy");
  Shape shape(22000, 1);  // "1, " per dim: 66000 bytes of shape
  save_npy(path, Tensor::zeros(shape, DType::u8));
  std::string bytes = read_file(path);
  CHECK(bytes[6] == 2);
  CHECK((bytes.size() - 1) % 64 == 0);
  Tensor back = load_npy(path);
  CHECK(back.dim() == 22000);
  CHECK(back.to_vector<int>() == std::vector<int>{0});
}

TEST_CASE("npy reads hand-written files of versions 1.0, 2.0 and 3.0") {
  TempDir tmp("npy");
  std::string path = (tmp / "hand.npy");
  write_file(path, npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }",
                             raw<double>({1.5, -2, 3, 4})));
  Tensor a = load_npy(path);
  CHECK(a.dtype() == DType::f64);
  CHECK(a.shape() == Shape{2, 2});
  CHECK(a.to_vector<double>() == std::vector<double>{1.5, -2, 3, 4});

  // 2.0, keys in another order, double quotes, no trailing comma, '=' byte order.
  write_file(path, npy_bytes(2, "{\"shape\": (3,), \"descr\": \"=i4\", \"fortran_order\": False}",
                             raw<int32_t>({7, -8, 9})));
  Tensor b = load_npy(path);
  CHECK(b.dtype() == DType::i32);
  CHECK(b.to_vector<int32_t>() == std::vector<int32_t>{7, -8, 9});

  // 3.0 (UTF-8 header), int64, a Python 2 long in the shape.
  write_file(path, npy_bytes(3, "{'descr': '<i8', 'fortran_order': False, 'shape': (1L, 2L), }",
                             raw<int64_t>({int64_t{1} << 40, -3})));
  Tensor c = load_npy(path);
  CHECK(c.dtype() == DType::i64);
  CHECK(c.shape() == Shape{1, 2});
  CHECK(c.to_vector<int64_t>() == std::vector<int64_t>{int64_t{1} << 40, -3});

  // bool loads as uint8.
  write_file(path, npy_bytes(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }", std::string("\x01\x00\x00\x01", 4)));
  Tensor d = load_npy(path);
  CHECK(d.dtype() == DType::u8);
  CHECK(d.to_vector<int>() == std::vector<int>{1, 0, 0, 1});

  // '|u1', float32 with an empty shape, trailing bytes after the data are ignored (as numpy).
  write_file(path, npy_bytes(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (0, 5), }", ""));
  CHECK(load_npy(path).shape() == Shape{0, 5});
  write_file(path, npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", raw<float>({3, 4})));
  Tensor e = load_npy(path);
  CHECK(e.shape() == Shape{});
  CHECK(e.item() == 3);
}

TEST_CASE("npy errors name the path and the reason") {
  TempDir tmp("npy");
  std::string path = (tmp / "x.npy");
  auto header = [](const std::string& descr, const std::string& fortran, const std::string& shape) {
    return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
  };
  auto check_error = [&](const std::string& bytes, const std::string& reason) {
    write_file(path, bytes);
    std::string message;
    try {
      load_npy(path);
    } catch (const IOError& e) {
      message = e.what();
    }
    CHECK(message == path + ": " + reason);
  };
  check_error(npy_bytes(1, header("<f4", "False", "(3, 4)"), std::string(20, '\0')),
              "file holds 20 bytes of data, shape [3, 4] float32 needs 48");
  check_error(npy_bytes(1, header("|b1", "False", "(3,)"), "\x01"), "file holds 1 bytes of data, shape [3] bool needs 3");
  check_error(npy_bytes(1, header("<f4", "True", "(2, 2)"), std::string(16, '\0')),
              "fortran_order arrays are not supported");
  check_error(npy_bytes(1, header(">f4", "False", "(2,)"), std::string(8, '\0')),
              "big-endian dtype '>f4' is not supported");
  check_error(npy_bytes(1, header("|f8", "False", "(2,)"), std::string(16, '\0')), "dtype '|f8' lacks a byte order");
  check_error(npy_bytes(1, header("<c8", "False", "(2,)"), std::string(16, '\0')),
              "unsupported dtype '<c8' (supported: <f4, <f8, <i4, <i8, |u1, |b1)");
  check_error(npy_bytes(1, header("<U10", "False", "(2,)"), std::string(80, '\0')),
              "unsupported dtype '<U10' (supported: <f4, <f8, <i4, <i8, |u1, |b1)");
  check_error(npy_bytes(1, header("|i1", "False", "(2,)"), std::string(2, '\0')),
              "dtype '|i1' (int8) is not supported: mmfuse has no int8 type (supported: <f4, <f8, <i4, <i8, |u1, |b1)");
  check_error(npy_bytes(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", "abcd"),
              "structured dtypes (a list as 'descr') are not supported");
  check_error(npy_bytes(1, "{'descr': '<f4', 'shape': (1,), }", "abcd"), "header lacks 'fortran_order'");
  check_error(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "abcd"),
              "malformed header, unexpected value for 'x': {'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}");
  check_error(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 'y'}", "abcd"),
              "unexpected header key 'x'");
  check_error(npy_bytes(1, header("<f4", "False", "(-1,)"), ""), "negative dimension in 'shape'");
  check_error(npy_bytes(1, header("<f4", "False", "'abc'"), ""), "header 'shape' must be a tuple of ints");
  check_error(npy_bytes(1, "{'descr': '<f4' 'shape': (1,)}", ""),
              "malformed header, expected '}' at character 16: {'descr': '<f4' 'shape': (1,)}");
  check_error("PK\x03\x04 this is a zip file", "not a .npy file (bad magic: expected \\x93NUMPY)");
  check_error("", "not a .npy file (bad magic: expected \\x93NUMPY)");
  check_error(std::string("\x93NUMPY\x01\x00\x76", 9), "header is truncated");
  check_error(std::string("\x93NUMPY\x01\x00\x76\x00{'descr'", 17),
              "header is truncated (17 bytes in the file, header says 128)");
  std::string v4 = npy_bytes(2, header("<f4", "False", "(1,)"), "abcd");
  v4[6] = 4;
  check_error(v4, "unsupported .npy format version 4.0 (1.0, 2.0 and 3.0 are)");

  CHECK_THROWS_WITH_AS(load_npy(tmp / "missing.npy"),
                       ((tmp / "missing.npy") + ": cannot open (No such file or directory)").c_str(), IOError);
  CHECK_THROWS_WITH_AS(load_npy(tmp.path.string()), (tmp.path.string() + ": is a directory, not a .npy file").c_str(),
                       IOError);
  CHECK_THROWS_WITH_AS(save_npy(tmp / "no/such/dir.npy", Tensor::zeros({1})),
                       ((tmp / "no/such/dir.npy") + ": cannot open for writing (No such file or directory)").c_str(),
                       IOError);
}

#ifdef MMFUSE_WITH_CUDA
#include "cuda/runtime.h"

TEST_CASE("npy saves a CUDA tensor through the host") {
  if (cuda::device_count() == 0) {
    MESSAGE("skipped: no GPU on this machine");
    return;
  }
  TempDir tmp("npy");
  std::string path = (tmp / "gpu.npy");
  Tensor t = Tensor::arange(0, 7, 1, DType::f32).to(Device::cuda(0));
  save_npy(path, t);
  Tensor back = load_npy(path);
  CHECK(back.device().is_cpu());
  CHECK(back.to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5, 6});
}
#endif
