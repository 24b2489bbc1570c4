// Helpers every op front-end uses: dtype dispatch, argument checks with messages that name
// the op and the shapes, and the kernel dispatch (MMF_KERNEL: the one place that picks a
// kernel's device).
#pragma once
#include <string>

#include "core/autograd.h"
#include "core/tensor.h"

namespace mmfuse::ops {

// Calls f.template operator()<T>() with T = float or double for the tensor's dtype.
template <typename F>
decltype(auto) dispatch_floating(const char* op, DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    default:
      throw OpError(std::string(op) + ": expects float32 or float64, got " + dtype_name(dtype));
  }
}

inline void check_defined(const char* op, const Tensor& t, const char* what = "input") {
  MMF_CHECK(t.defined(), OpError, op, ": ", what, " is undefined");
}

inline void check_floating(const char* op, const Tensor& t) {
  check_defined(op, t);
  MMF_CHECK(is_floating(t.dtype()), OpError, op, ": expects a float32 or float64 tensor, got ", t.str());
}

// Same dtype and device (operands of one kernel).
inline void check_compatible(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, a);
  check_defined(op, b);
  MMF_CHECK(a.dtype() == b.dtype() && a.device() == b.device(), OpError, op,
            ": operands must share dtype and device, got ", a.str(), " and ", b.str());
}

inline void check_dim(const char* op, const Tensor& t, int64_t expected, const char* what = "input") {
  MMF_CHECK(t.dim() == expected, OpError, op, ": ", what, " must be ", expected, "-d, got ",
            shape_str(t.shape()));
}

// Normalises a possibly negative dim for a tensor of `ndim` dims.
inline int64_t wrap_dim(const char* op, int64_t dim, int64_t ndim) {
  int64_t d = dim < 0 ? dim + ndim : dim;
  MMF_CHECK(d >= 0 && d < ndim, OpError, op, ": dim ", dim, " out of range for a ", ndim, "-d tensor");
  return d;
}

// Where a kernel runs (MMF_KERNEL's first argument): a tensor's device, or a device.
inline Device device_of(const Tensor& t) { return t.device(); }
inline Device device_of(Device d) { return d; }

// Thrown by the CUDA branch of an op whose kernel is not there: the op names itself.
[[noreturn]] inline void no_cuda_kernel(const char* op) {
  throw DeviceError(std::string(op) + ": no CUDA kernel (this build runs it on the CPU only)");
}

}  // namespace mmfuse::ops

// MMF_KERNEL(where, name, args...), a statement inside a dispatch lambda (element type T):
// cpu::name<T>(args...), or, when `where` (a tensor or a Device) is on CUDA, its twin
// cuda::name<T>(args..., device index), declared in the family's cuda/ header (plain
// declarations: every build includes them). The one place that picks a kernel's device. In a
// build without CUDA the twin is never instantiated (a discarded `if constexpr` branch; in a
// dispatch template it is not instantiated, elsewhere it is not odr-used, so no definition is
// needed), and a CUDA tensor is refused naming the kernel. MMF_KERNEL_UNTYPED is the same for
// a kernel that is not a template on the element type (cpu::name(args...)).
#define MMF_KERNEL(where, name, ...) \
  MMF_KERNEL_CALL(where, #name, ::mmfuse::cpu::name<T>, ::mmfuse::cuda::name<T>, __VA_ARGS__)
#define MMF_KERNEL_UNTYPED(where, name, ...) \
  MMF_KERNEL_CALL(where, #name, ::mmfuse::cpu::name, ::mmfuse::cuda::name, __VA_ARGS__)

#define MMF_KERNEL_CALL(where, label, cpu_kernel, cuda_kernel, ...)             \
  do {                                                                          \
    const ::mmfuse::Device mmf_kernel_device = ::mmfuse::ops::device_of(where); \
    if (!mmf_kernel_device.is_cuda()) {                                         \
      cpu_kernel(__VA_ARGS__);                                                  \
    } else if constexpr (::mmfuse::kWithCuda) {                                 \
      cuda_kernel(__VA_ARGS__, mmf_kernel_device.index);                        \
    } else {                                                                    \
      ::mmfuse::ops::no_cuda_kernel(label);                                     \
    }                                                                           \
  } while (0)
