// The narrow runtime interface core/ uses for device memory. No CUDA headers here: core/
// includes this only where MMFUSE_WITH_CUDA is defined.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mmfuse::cuda {

int device_count();                          // 0 when no driver or no GPU
void* device_alloc(size_t nbytes, int device);
void device_free(void* ptr, int device);
// Host↔device and device↔device copies on the device's compute stream. A copy to the host
// waits for the stream (the only synchronising call on the data path).
void copy_to_device(void* dst, const void* src, size_t nbytes, int device);
void copy_to_host(void* dst, const void* src, size_t nbytes, int device);
void copy_device_to_device(void* dst, const void* src, size_t nbytes, int device);
void synchronize(int device);

}  // namespace mmfuse::cuda
