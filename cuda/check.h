// Checked CUDA runtime calls: a failure throws DeviceError naming the call, where it was made
// and the error string. For use in cuda/ only (includes CUDA headers).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

#define MMF_CUDA_CHECK(call)                                                                \
  do {                                                                                      \
    cudaError_t mmf_err_ = (call);                                                          \
    if (mmf_err_ != cudaSuccess)                                                            \
      throw ::mmfuse::DeviceError(std::string(#call) + " failed at " + __FILE__ + ":" +     \
                                  std::to_string(__LINE__) + ": " + cudaGetErrorString(mmf_err_)); \
  } while (0)
