// The narrow runtime interface core/, tools/ and tests/ use: devices, device memory (the
// caching allocator of cuda/allocator.cpp), pinned host buffers, copies on the device's
// compute stream, and device queries. No CUDA headers here: include it only where
// MMFUSE_WITH_CUDA is defined.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cuda/allocator.h"
#include "cuda/precision.h"

namespace mmfuse::cuda {

int device_count();  // 0 when no driver or no GPU

// ---- copies on the device's compute stream -----------------------------------------------
// A copy to the host waits for the stream (the only synchronising call on the data path).
void copy_to_device(void* dst, const void* src, size_t nbytes, int device);
void copy_to_host(void* dst, const void* src, size_t nbytes, int device);
void copy_device_to_device(void* dst, const void* src, size_t nbytes, int device);
void synchronize(int device);  // waits for the device's compute stream

// ---- queries and timing -------------------------------------------------------------------
struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  size_t total_memory = 0, free_memory = 0;
  int multiprocessors = 0;
  int clock_khz = 0, memory_clock_khz = 0, memory_bus_width = 0;
  size_t l2_cache_bytes = 0;
};
struct VersionInfo {
  int driver = 0;   // CUDA version the driver supports, e.g. 13000
  int runtime = 0;  // CUDA runtime mmfuse runs with
  int cublas = 0;
  size_t cudnn = 0;  // 0 when built without cuDNN
  size_t cudnn_compiled = 0;
};
DeviceInfo device_info(int device);
VersionInfo version_info();

// Milliseconds that the work enqueued by `work` took on the device's stream, measured with
// CUDA events around it (waits for the stream).
float time_on_stream(int device, const std::function<void()>& work);

}  // namespace mmfuse::cuda
