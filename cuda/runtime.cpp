// Copies on the device's compute stream. Device memory and pinned buffers: cuda/allocator.cpp;
// contexts, device queries and timing: cuda/context.cpp.
#include "cuda/runtime.h"

#include "cuda/check.h"
#include "cuda/context.h"

namespace mmfuse::cuda {

void copy_to_device(void* dst, const void* src, size_t nbytes, int device) {
  if (nbytes == 0) return;
  MMF_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream(device)));
}

void copy_to_host(void* dst, const void* src, size_t nbytes, int device) {
  if (nbytes == 0) return;
  cudaStream_t s = stream(device);
  MMF_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
  // The host reads dst next (and a pageable dst is only written at the end of the copy).
  MMF_CUDA_CHECK(cudaStreamSynchronize(s));
}

void copy_device_to_device(void* dst, const void* src, size_t nbytes, int device) {
  if (nbytes == 0) return;
  MMF_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, stream(device)));
}

}  // namespace mmfuse::cuda
