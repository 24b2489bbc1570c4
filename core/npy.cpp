#include "core/npy.h"

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <vector>

namespace mmfuse {

namespace {

static_assert(std::endian::native == std::endian::little,
              "the .npy reader and writer assume a little-endian host");

// The format (numpy/lib/format.py): magic, major and minor version bytes, the header length
// (uint16 in 1.0, uint32 in 2.0 and 3.0), the header (a Python dict literal, ASCII in 1.0 and
// 2.0, UTF-8 in 3.0) padded with spaces and a newline so that the data starts 64-byte aligned.
constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;
// numpy.save leaves room for the first dim to grow to this many digits in place.
constexpr size_t kGrowthAxisMaxDigits = 21;

[[noreturn]] void fail(const std::string& path, const std::string& reason) { throw IOError(path + ": " + reason); }

std::string errno_text() { return errno ? std::strerror(errno) : "unknown error"; }

struct HeaderValue {
  enum Kind { text, boolean, tuple } kind = text;
  std::string str;
  bool flag = false;
  std::vector<int64_t> ints;
};

// Reads the subset of Python literals that .npy headers use: a dict of string keys whose
// values are strings, True/False and tuples of non-negative ints.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, const std::string& header) : path_(path), s_(header) {}

  std::map<std::string, HeaderValue> parse_dict() {
    std::map<std::string, HeaderValue> dict;
    skip_ws();
    expect('{');
    while (true) {
      skip_ws();
      if (eat('}')) break;
      std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      dict[key] = parse_value(key);
      skip_ws();
      if (eat(',')) continue;
      expect('}');
      break;
    }
    return dict;
  }

 private:
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  void expect(char c) {
    if (!eat(c)) bad(std::string("expected '") + c + "' at character " + std::to_string(i_));
  }
  [[noreturn]] void bad(const std::string& what) {
    std::string shown = s_.substr(0, s_.find_last_not_of(" \n") + 1);
    if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
    fail(path_, "malformed header, " + what + ": " + shown);
  }
  std::string parse_string() {
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) bad("expected a quoted string at character " + std::to_string(i_));
    char quote = s_[i_++];
    size_t end = s_.find(quote, i_);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return out;
  }
  HeaderValue parse_value(const std::string& key) {
    HeaderValue v;
    if (i_ < s_.size() && (s_[i_] == '\'' || s_[i_] == '"')) {
      v.str = parse_string();
    } else if (s_.compare(i_, 4, "True") == 0 || s_.compare(i_, 5, "False") == 0) {
      v.kind = HeaderValue::boolean;
      v.flag = s_[i_] == 'T';
      i_ += v.flag ? 4 : 5;
    } else if (eat('(')) {
      v.kind = HeaderValue::tuple;
      while (true) {
        skip_ws();
        if (eat(')')) break;
        v.ints.push_back(parse_int(key));
        skip_ws();
        if (eat(',')) continue;
        expect(')');
        break;
      }
    } else if (key == "descr" && i_ < s_.size() && s_[i_] == '[') {
      fail(path_, "structured dtypes (a list as 'descr') are not supported");
    } else {
      bad("unexpected value for '" + key + "'");
    }
    return v;
  }
  int64_t parse_int(const std::string& key) {
    if (i_ < s_.size() && s_[i_] == '-') fail(path_, "negative dimension in '" + key + "'");
    if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') bad("expected an integer in '" + key + "'");
    int64_t value = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, s_[i_] - '0', &value))
        fail(path_, "dimension too large in '" + key + "'");
      ++i_;
    }
    eat('L');  // Python 2 longs, in files written by old numpy
    return value;
  }

  const std::string& path_;
  const std::string& s_;
  size_t i_ = 0;
};

struct NpyType {
  DType dtype;
  const char* name;  // for messages: "float32", ..., "bool"
};

NpyType parse_descr(const std::string& path, const std::string& descr) {
  struct Known {
    const char* code;
    NpyType type;
  };
  static const Known known[] = {{"f4", {DType::f32, "float32"}}, {"f8", {DType::f64, "float64"}},
                                {"i4", {DType::i32, "int32"}},   {"i8", {DType::i64, "int64"}},
                                {"u1", {DType::u8, "uint8"}},    {"b1", {DType::u8, "bool"}}};
  const char* supported = " (supported: <f4, <f8, <i4, <i8, |u1, |b1)";
  std::string code = descr.size() == 3 ? descr.substr(1) : "";
  char order = descr.empty() ? '?' : descr[0];
  if (code == "i1") fail(path, "dtype '" + descr + "' (int8) is not supported: mmfuse has no int8 type" + supported);
  const Known* found = nullptr;
  for (const Known& k : known)
    if (code == k.code) found = &k;
  if (!found || std::string("<>=|").find(order) == std::string::npos)
    fail(path, "unsupported dtype '" + descr + "'" + supported);
  size_t size = dtype_size(found->type.dtype);
  // '<' is little-endian and '=' native (little-endian here); '|' (no order) and '>' mean
  // nothing for one-byte types, which numpy writes with '|'.
  if (order == '>' && size > 1) fail(path, "big-endian dtype '" + descr + "' is not supported");
  if (order == '|' && size > 1) fail(path, "dtype '" + descr + "' lacks a byte order");
  return found->type;
}

std::string shape_repr(const Shape& shape) {  // Python's repr of a tuple
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

const char* descr_of(DType dtype) {
  switch (dtype) {
    case DType::f32: return "<f4";
    case DType::f64: return "<f8";
    case DType::i32: return "<i4";
    case DType::i64: return "<i8";
    case DType::u8: return "|u1";
  }
  return "?";
}

// Where the bytes of a .npy come from: a file, read as needed (a large array is copied once,
// into the tensor), or memory. `read` copies n bytes at offset (offset + n <= size).
struct ByteSource {
  uint64_t size;
  std::function<void(uint64_t offset, size_t n, void* dst)> read;
};

Tensor decode(const std::string& path, const ByteSource& src) {
  const uint64_t file_size = src.size;
  unsigned char prefix[12] = {};
  size_t got = static_cast<size_t>(std::min<uint64_t>(file_size, sizeof(prefix)));
  src.read(0, got, prefix);
  if (got < kMagicLen || std::memcmp(prefix, kMagic, kMagicLen) != 0)
    fail(path, "not a .npy file (bad magic: expected \\x93NUMPY)");
  if (got < 10) fail(path, "header is truncated");
  int major = prefix[6], minor = prefix[7];
  if (minor != 0 || major < 1 || major > 3)
    fail(path, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                   " (1.0, 2.0 and 3.0 are)");
  size_t len_bytes = major == 1 ? 2 : 4;
  if (got < kMagicLen + 2 + len_bytes) fail(path, "header is truncated");
  uint64_t header_len = prefix[8] | (prefix[9] << 8);
  if (len_bytes == 4) header_len |= (uint64_t{prefix[10]} << 16) | (uint64_t{prefix[11]} << 24);
  uint64_t data_offset = kMagicLen + 2 + len_bytes + header_len;
  if (data_offset > file_size)
    fail(path, "header is truncated (" + std::to_string(file_size) + " bytes in the file, header says " +
                   std::to_string(data_offset) + ")");
  std::string header(static_cast<size_t>(header_len), '\0');
  src.read(kMagicLen + 2 + len_bytes, header.size(), header.data());

  auto dict = HeaderParser(path, header).parse_dict();
  for (const auto& [key, value] : dict)
    if (key != "descr" && key != "fortran_order" && key != "shape") fail(path, "unexpected header key '" + key + "'");
  auto get = [&](const char* key, HeaderValue::Kind kind, const char* what) -> const HeaderValue& {
    auto it = dict.find(key);
    if (it == dict.end()) fail(path, std::string("header lacks '") + key + "'");
    if (it->second.kind != kind) fail(path, std::string("header '") + key + "' must be " + what);
    return it->second;
  };
  const HeaderValue& descr = get("descr", HeaderValue::text, "a string");
  const HeaderValue& fortran = get("fortran_order", HeaderValue::boolean, "True or False");
  const HeaderValue& shape_value = get("shape", HeaderValue::tuple, "a tuple of ints");
  NpyType type = parse_descr(path, descr.str);
  if (fortran.flag) fail(path, "fortran_order arrays are not supported");
  Shape shape = shape_value.ints;
  int64_t numel = 1, nbytes = 0;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(numel, d, &numel)) fail(path, "shape " + shape_str(shape) + " is too large");
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(dtype_size(type.dtype)), &nbytes))
    fail(path, "shape " + shape_str(shape) + " is too large");
  uint64_t available = file_size - data_offset;
  if (available < static_cast<uint64_t>(nbytes))
    fail(path, "file holds " + std::to_string(available) + " bytes of data, shape " + shape_str(shape) + " " +
                   type.name + " needs " + std::to_string(nbytes));

  Tensor t = Tensor::empty(shape, type.dtype);
  src.read(data_offset, static_cast<size_t>(nbytes), t.raw_data());
  return t;
}

}  // namespace

Tensor load_npy(const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open (" + errno_text() + ")");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory, not a .npy file");
  in.seekg(0, std::ios::end);
  std::streamoff end = in.tellg();
  if (end < 0) fail(path, "cannot read (" + errno_text() + ")");
  ByteSource file{static_cast<uint64_t>(end), [&](uint64_t offset, size_t n, void* dst) {
                    in.seekg(static_cast<std::streamoff>(offset));
                    in.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
                    if (!in) fail(path, "read failed (" + errno_text() + ")");
                  }};
  return decode(path, file);
}

Tensor decode_npy(const void* data, size_t size, const std::string& name) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  ByteSource memory{size, [&](uint64_t offset, size_t n, void* dst) {
                      if (n) std::memcpy(dst, bytes + offset, n);
                    }};
  return decode(name, memory);
}

void save_npy(const std::string& path, const Tensor& t) {
  MMF_CHECK(t.defined(), IOError, path, ": cannot save an undefined tensor");
  // The dict exactly as numpy.save writes it (keys sorted, trailing ", "), then its spare room.
  std::string dict = std::string("{'descr': '") + descr_of(t.dtype()) +
                     "', 'fortran_order': False, 'shape': " + shape_repr(t.shape()) + ", }";
  if (t.dim() > 0) dict.append(kGrowthAxisMaxDigits - std::to_string(t.shape()[0]).size(), ' ');
  int major = 1;
  size_t prefix_len = kMagicLen + 2 + 2, header_len = 0;
  for (;;) {
    size_t unpadded = dict.size() + 1;  // + '\n'
    header_len = unpadded + (kAlign - (prefix_len + unpadded) % kAlign);  // numpy pads 1..64
    if (major > 1 || header_len <= 0xFFFF) break;
    major = 2;
    prefix_len = kMagicLen + 2 + 4;
  }
  std::string bytes(kMagic, kMagicLen);
  bytes += static_cast<char>(major);
  bytes += '\0';
  for (size_t i = 0; i < prefix_len - kMagicLen - 2; ++i) bytes += static_cast<char>((header_len >> (8 * i)) & 0xFF);
  bytes += dict;
  bytes.append(header_len - dict.size() - 1, ' ');
  bytes += '\n';

  std::vector<unsigned char> host;
  const void* data = t.raw_data();
  if (!t.device().is_cpu()) {
    host.resize(t.nbytes());
    copy_elements(t.raw_data(), t.dtype(), t.device(), host.data(), t.dtype(), Device::cpu(), t.numel());
    data = host.data();
  }
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, "cannot open for writing (" + errno_text() + ")");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(t.nbytes()));
  out.close();
  if (!out) fail(path, "write failed (" + errno_text() + ")");
}

}  // namespace mmfuse
