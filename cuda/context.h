// Per-device context: one compute stream and the cuBLAS / cuDNN handles bound to it, created
// lazily, once per device, and kept for the life of the process (never destroyed: tensors
// released during static destruction may still use them). For use in cuda/ only.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#ifdef MMFUSE_WITH_CUDNN
#include <cudnn.h>
#endif

#include <mutex>

#include "cuda/precision.h"

namespace mmfuse::cuda {

class DeviceContext {
 public:
  explicit DeviceContext(int device);
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  const cudaDeviceProp& properties() const { return props_; }
  // Runs `call(handle)` with the cuBLAS handle (bound to stream()) in the math mode of
  // `precision`, under the context's cuBLAS lock. The math mode is state of the one handle
  // every thread shares: setting it and the call it governs form one critical section, or
  // another thread's setting could land in between (an fp32 product run on TF32 tensor cores).
  template <typename F>
  void with_cublas(Precision precision, F&& call) {
    std::lock_guard<std::mutex> lock(cublas_mutex_);
    call(cublas_locked(precision));
  }
#ifdef MMFUSE_WITH_CUDNN
  cudnnHandle_t cudnn();
#endif

 private:
  cublasHandle_t cublas_locked(Precision precision);  // the caller holds cublas_mutex_

  int device_;
  cudaStream_t stream_ = nullptr;
  cudaDeviceProp props_{};
  std::mutex cublas_mutex_;
  cublasHandle_t cublas_ = nullptr;  // created on first use, under cublas_mutex_
#ifdef MMFUSE_WITH_CUDNN
  std::once_flag cudnn_once_;
  cudnnHandle_t cudnn_ = nullptr;
#endif
};

// Makes `device` current on the calling thread (checked: throws DeviceError naming the device
// and how many are visible) and returns its context, creating it on first use.
DeviceContext& context(int device);
// The compute stream of `device`, with the device made current: every kernel launch and copy
// of mmfuse goes there.
inline cudaStream_t stream(int device) { return context(device).stream(); }
// The calling thread's current device (cudaGetDevice).
int current_device();

}  // namespace mmfuse::cuda
