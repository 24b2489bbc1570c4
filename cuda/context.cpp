// Device contexts, device queries and event timing.
#include "cuda/context.h"

#include <array>
#include <memory>

#include "cuda/check.h"
#include "cuda/runtime.h"

namespace mmfuse::cuda {

int device_count() {
  // Queried once: the count cannot change while the process runs.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the "no device" / "no driver" error
      return 0;
    }
    return n;
  }();
  return count;
}

namespace {
constexpr int kMaxDevices = 64;

void check_device(int device) {
  int n = device_count();
  MMF_CHECK(device >= 0 && device < n && device < kMaxDevices, DeviceError, "cuda:", device,
            " is not available (", n, " CUDA device(s) visible)");
}
}  // namespace

DeviceContext::DeviceContext(int device) : device_(device) {
  MMF_CUDA_CHECK(cudaSetDevice(device));
  MMF_CUDA_CHECK(cudaGetDeviceProperties(&props_, device));
  // Non-blocking: no implicit synchronisation with the legacy default stream, which mmfuse
  // never uses.
  MMF_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

cublasHandle_t DeviceContext::cublas_locked(Precision precision) {
  if (!cublas_) {
    MMF_CUDA_CHECK(cudaSetDevice(device_));
    cublasHandle_t h = nullptr;
    MMF_CUBLAS_CHECK(cublasCreate(&h));
    MMF_CUBLAS_CHECK(cublasSetStream(h, stream_));
    cublas_ = h;
  }
  // fp32: no tensor-core down-conversion (CUBLAS_DEFAULT_MATH computes float GEMMs in fp32);
  // tf32: allow TF32 tensor-core products with fp32 accumulation.
  MMF_CUBLAS_CHECK(cublasSetMathMode(cublas_, precision == Precision::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                           : CUBLAS_DEFAULT_MATH));
  return cublas_;
}

#ifdef MMFUSE_WITH_CUDNN
cudnnHandle_t DeviceContext::cudnn() {
  std::call_once(cudnn_once_, [this] {
    MMF_CUDA_CHECK(cudaSetDevice(device_));
    MMF_CUDNN_CHECK(cudnnCreate(&cudnn_));
    MMF_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
  });
  return cudnn_;
}
#endif

DeviceContext& context(int device) {
  check_device(device);
  // Leaked on purpose: contexts outlive static destruction (see context.h).
  static auto* contexts = new std::array<std::unique_ptr<DeviceContext>, kMaxDevices>();
  static auto* onces = new std::array<std::once_flag, kMaxDevices>();
  std::call_once((*onces)[device], [device] { (*contexts)[device] = std::make_unique<DeviceContext>(device); });
  // cudaSetDevice is per thread: make the device current on every call (cheap when it is).
  int current = -1;
  MMF_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device) MMF_CUDA_CHECK(cudaSetDevice(device));
  return *(*contexts)[device];
}

int current_device() {
  int d = 0;
  MMF_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

void synchronize(int device) { MMF_CUDA_CHECK(cudaStreamSynchronize(stream(device))); }

DeviceInfo device_info(int device) {
  const cudaDeviceProp& p = context(device).properties();
  DeviceInfo info;
  info.index = device;
  info.name = p.name;
  info.major = p.major;
  info.minor = p.minor;
  info.multiprocessors = p.multiProcessorCount;
  info.l2_cache_bytes = static_cast<size_t>(p.l2CacheSize);
  info.memory_bus_width = p.memoryBusWidth;
  // Clock rates left cudaDeviceProp in CUDA 13: ask the attributes.
  MMF_CUDA_CHECK(cudaDeviceGetAttribute(&info.clock_khz, cudaDevAttrClockRate, device));
  MMF_CUDA_CHECK(cudaDeviceGetAttribute(&info.memory_clock_khz, cudaDevAttrMemoryClockRate, device));
  MMF_CUDA_CHECK(cudaMemGetInfo(&info.free_memory, &info.total_memory));
  return info;
}

VersionInfo version_info() {
  VersionInfo v;
  MMF_CUDA_CHECK(cudaDriverGetVersion(&v.driver));
  MMF_CUDA_CHECK(cudaRuntimeGetVersion(&v.runtime));
  // cublasGetProperty needs no handle (and so no device).
  int major = 0, minor = 0, patch = 0;
  MMF_CUBLAS_CHECK(cublasGetProperty(MAJOR_VERSION, &major));
  MMF_CUBLAS_CHECK(cublasGetProperty(MINOR_VERSION, &minor));
  MMF_CUBLAS_CHECK(cublasGetProperty(PATCH_LEVEL, &patch));
  v.cublas = major * 10000 + minor * 100 + patch;
#ifdef MMFUSE_WITH_CUDNN
  v.cudnn = cudnnGetVersion();
  v.cudnn_compiled = CUDNN_VERSION;
#endif
  return v;
}

float time_on_stream(int device, const std::function<void()>& work) {
  cudaStream_t s = stream(device);
  cudaEvent_t start = nullptr, stop = nullptr;
  MMF_CUDA_CHECK(cudaEventCreate(&start));
  MMF_CUDA_CHECK(cudaEventCreate(&stop));
  float ms = 0;
  try {
    MMF_CUDA_CHECK(cudaEventRecord(start, s));
    work();
    MMF_CUDA_CHECK(cudaEventRecord(stop, s));
    MMF_CUDA_CHECK(cudaEventSynchronize(stop));
    MMF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  } catch (...) {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    throw;
  }
  MMF_CUDA_CHECK(cudaEventDestroy(start));
  MMF_CUDA_CHECK(cudaEventDestroy(stop));
  return ms;
}

}  // namespace mmfuse::cuda
