// Device memory and copies. Allocation is plain cudaMalloc for now; the caching allocator of
// the CUDA-backend issue replaces device_alloc/device_free behind the same interface.
#include "cuda/runtime.h"

#include "cuda/check.h"

namespace mmfuse::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

namespace {
void use_device(int device) {
  int n = device_count();
  MMF_CHECK(device >= 0 && device < n, DeviceError, "cuda:", device, " is not available (",
            n, " CUDA device(s) visible)");
  MMF_CUDA_CHECK(cudaSetDevice(device));
}
}  // namespace

void* device_alloc(size_t nbytes, int device) {
  use_device(device);
  void* p = nullptr;
  if (nbytes == 0) nbytes = 1;
  cudaError_t err = cudaMalloc(&p, nbytes);
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    throw DeviceError("out of memory on cuda:" + std::to_string(device) + ": asked for " +
                      std::to_string(nbytes) + " bytes, " + std::to_string(free_bytes) + " of " +
                      std::to_string(total) + " free");
  }
  return p;
}

void device_free(void* ptr, int device) {
  if (!ptr) return;
  cudaSetDevice(device);
  cudaFree(ptr);  // never throws from a destructor
}

void copy_to_device(void* dst, const void* src, size_t nbytes, int device) {
  use_device(device);
  MMF_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice));
}

void copy_to_host(void* dst, const void* src, size_t nbytes, int device) {
  use_device(device);
  MMF_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost));
}

void copy_device_to_device(void* dst, const void* src, size_t nbytes, int device) {
  use_device(device);
  MMF_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToDevice));
}

void synchronize(int device) {
  use_device(device);
  MMF_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace mmfuse::cuda
