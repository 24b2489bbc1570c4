// The precision switch of the CUDA backend: `fp32` (strict IEEE float32 products) or `tf32`
// (tensor cores: 10-bit mantissa products, float32 accumulation). Two process-wide settings,
// with PyTorch's defaults: matmul fp32 (torch.backends.cuda.matmul.allow_tf32 = False since
// 1.12) and convolution tf32 (torch.backends.cudnn.allow_tf32 = True). Header-only and free of
// CUDA headers so that the solver and the command line can set it in any build (a CPU-only
// build accepts and ignores it).
#pragma once
#include <atomic>
#include <string>

#include "base/error.h"

namespace mmfuse::cuda {

enum class Precision { fp32, tf32 };

namespace precision_detail {
inline std::atomic<Precision>& matmul_precision_slot() {
  static std::atomic<Precision> slot{Precision::fp32};
  return slot;
}
inline std::atomic<Precision>& conv_precision_slot() {
  static std::atomic<Precision> slot{Precision::tf32};
  return slot;
}
}  // namespace precision_detail

// GEMM through cuBLAS (matmul, linear). Read when a cuBLAS handle is handed out.
inline void set_matmul_precision(Precision p) { precision_detail::matmul_precision_slot().store(p); }
inline Precision matmul_precision() { return precision_detail::matmul_precision_slot().load(); }
// Convolutions through cuDNN (math type of the convolution descriptors).
inline void set_conv_precision(Precision p) { precision_detail::conv_precision_slot().store(p); }
inline Precision conv_precision() { return precision_detail::conv_precision_slot().load(); }

// Both switches at once: what the solver's `precision` and `--precision` mean.
inline void set_precision(Precision p) {
  set_matmul_precision(p);
  set_conv_precision(p);
}

inline const char* precision_name(Precision p) { return p == Precision::fp32 ? "fp32" : "tf32"; }
inline Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::fp32;
  if (text == "tf32") return Precision::tf32;
  throw Error("unknown precision '" + text + "' (expected fp32 or tf32)");
}

}  // namespace mmfuse::cuda
