// Element types and devices: the two runtime tags every Tensor carries.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>

#include "base/error.h"

namespace mmfuse {

// Runtime element type. Compute kernels exist for f32 and f64 (f64 so that gradient checks
// run in double); i32 holds labels and indices; i64 and u8 exist for .npy I/O and copies.
// Adding a half type for mixed precision means one enum value, one size, one name, and the
// kernels that accept it.
enum class DType : uint8_t { f32, f64, i32, i64, u8 };

// Calls f(T{}) with the C++ type of t (float, double, int32_t, int64_t, uint8_t): one switch
// for the host code of both devices (copies and conversions).
template <typename F>
void visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::i32: f(int32_t{}); break;
    case DType::i64: f(int64_t{}); break;
    case DType::u8: f(uint8_t{}); break;
  }
}

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::u8: return "uint8";
  }
  return "?";
}

inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64; }

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::cuda, index}; }
  // Parses "cpu", "cuda", "cuda:1" (throws Error on anything else).
  static Device parse(const std::string& text);

  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  bool operator==(const Device& o) const { return type == o.type && (is_cpu() || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

inline Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda" || text == "gpu") return cuda(0);
  for (const char* prefix : {"cuda:", "gpu:"}) {
    size_t n = std::strlen(prefix);
    if (text.compare(0, n, prefix) == 0 && text.size() > n) {
      char* end = nullptr;
      long index = std::strtol(text.c_str() + n, &end, 10);
      if (*end == '\0' && index >= 0) return cuda(static_cast<int>(index));
    }
  }
  throw Error("unknown device '" + text + "' (expected cpu, cuda or cuda:N)");
}

// Whether this build has the CUDA backend: the one switch the op front-ends read
// (MMF_KERNEL in core/ops/common.h), so that no op file holds an #ifdef of its own.
#ifdef MMFUSE_WITH_CUDA
inline constexpr bool kWithCuda = true;
#else
inline constexpr bool kWithCuda = false;
#endif

}  // namespace mmfuse
