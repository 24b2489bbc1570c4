// Checked CUDA, cuBLAS and cuDNN calls: a failure throws DeviceError naming the call, where it
// was made and the library's error string. For use in cuda/ only (includes CUDA headers).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "base/error.h"

#define MMF_CUDA_CHECK(call)                                                                \
  do {                                                                                      \
    cudaError_t mmf_err_ = (call);                                                          \
    if (mmf_err_ != cudaSuccess)                                                            \
      throw ::mmfuse::DeviceError(std::string(#call) + " failed at " + __FILE__ + ":" +     \
                                  std::to_string(__LINE__) + ": " + cudaGetErrorString(mmf_err_)); \
  } while (0)

#define MMF_CUBLAS_CHECK(call)                                                              \
  do {                                                                                      \
    cublasStatus_t mmf_status_ = (call);                                                    \
    if (mmf_status_ != CUBLAS_STATUS_SUCCESS)                                               \
      throw ::mmfuse::DeviceError(std::string(#call) + " failed at " + __FILE__ + ":" +     \
                                  std::to_string(__LINE__) + ": " +                         \
                                  cublasGetStatusString(mmf_status_));                      \
  } while (0)

#ifdef MMFUSE_WITH_CUDNN
#include <cudnn.h>
#define MMF_CUDNN_CHECK(call)                                                               \
  do {                                                                                      \
    cudnnStatus_t mmf_status_ = (call);                                                     \
    if (mmf_status_ != CUDNN_STATUS_SUCCESS)                                                \
      throw ::mmfuse::DeviceError(std::string(#call) + " failed at " + __FILE__ + ":" +     \
                                  std::to_string(__LINE__) + ": " +                         \
                                  cudnnGetErrorString(mmf_status_));                        \
  } while (0)
#endif

// After a kernel launch: a launch error (bad configuration, no kernel image for this GPU, a
// sticky error of an earlier kernel) throws naming the kernel and its shapes. The message
// parts after `kernel` are only evaluated on failure.
#define MMF_CUDA_CHECK_LAUNCH(kernel, ...)                                                  \
  do {                                                                                      \
    cudaError_t mmf_err_ = cudaGetLastError();                                              \
    if (mmf_err_ != cudaSuccess)                                                            \
      throw ::mmfuse::DeviceError(::mmfuse::detail::concat(                                 \
          "CUDA kernel ", kernel, " failed to launch (", __VA_ARGS__, ") at ", __FILE__, ":", \
          __LINE__, ": ", cudaGetErrorString(mmf_err_)));                                   \
  } while (0)
