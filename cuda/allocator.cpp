// The caching device allocator and the pinned host-buffer cache. Exact-size bins (no block
// splitting): simple, and obviously correct; a training loop asks for the same sizes every
// iteration, so after the first one every allocation is a cache hit.
#include "cuda/allocator.h"

#include <cstdio>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/runtime.h"

namespace mmfuse::cuda {

namespace {

constexpr size_t kSmallLimit = size_t{1} << 20;  // up to 1 MiB: 512-byte bins
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t{2} << 20;  // above: 2 MiB bins
constexpr int kMaxDevices = 64;

struct DeviceCache {
  std::mutex mutex;
  std::map<size_t, std::vector<void*>> free_blocks;  // bin size -> cached blocks
  std::unordered_map<void*, size_t> live;            // handed-out block -> bin size
  AllocatorStats stats;
};

// Leaked on purpose: Storage objects destroyed during static destruction still return here.
DeviceCache& device_cache(int device) {
  static auto* caches = new DeviceCache[kMaxDevices];
  MMF_CHECK(device >= 0 && device < kMaxDevices, DeviceError, "cuda:", device, " is out of range");
  return caches[device];
}

// Frees every cached block of the device; the caller holds the cache's mutex.
void release_cached_locked(int device, DeviceCache& cache) {
  if (cache.free_blocks.empty()) return;
  // Blocks are reused in stream order, but cudaFree must not race with queued kernels that
  // still read a block freed by its tensor: wait for the device first. The current device is
  // the calling thread's setting (pinned_free records on its stream): put the caller's back,
  // as empty_cache(-1) visits every device.
  int previous = 0;
  MMF_CUDA_CHECK(cudaGetDevice(&previous));
  MMF_CUDA_CHECK(cudaSetDevice(device));
  MMF_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto& [size, blocks] : cache.free_blocks) {
    for (void* p : blocks) {
      MMF_CUDA_CHECK(cudaFree(p));
      cache.stats.reserved -= size;
    }
  }
  cache.free_blocks.clear();
  MMF_CUDA_CHECK(cudaSetDevice(previous));
}

}  // namespace

size_t allocation_size(size_t nbytes) {
  if (nbytes == 0) nbytes = 1;
  MMF_CHECK(nbytes <= (~size_t{0}) - kLargeRound, DeviceError, "allocation of ", nbytes, " bytes is too large");
  if (nbytes <= kSmallLimit) return (nbytes + kSmallRound - 1) / kSmallRound * kSmallRound;
  return (nbytes + kLargeRound - 1) / kLargeRound * kLargeRound;
}

std::string format_bytes(size_t nbytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(nbytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[64];
  if (u == 0) std::snprintf(buf, sizeof buf, "%zu B", nbytes);
  else std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

void* device_alloc(size_t nbytes, int device) {
  context(device);  // checks the device and makes it current
  size_t size = allocation_size(nbytes);
  DeviceCache& cache = device_cache(device);
  std::lock_guard<std::mutex> lock(cache.mutex);
  void* p = nullptr;
  auto it = cache.free_blocks.find(size);
  if (it != cache.free_blocks.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    ++cache.stats.cache_hits;
  } else {
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it, give the cache back and try once more
      size_t cached_before = cache.stats.cached();
      release_cached_locked(device, cache);
      err = cudaMalloc(&p, size);
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_bytes = 0, total = 0;
        if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) cudaGetLastError();
        throw DeviceError(detail::concat(
            "out of memory on cuda:", device, ": asked for ", format_bytes(nbytes), " (", nbytes,
            " bytes), ", format_bytes(cache.stats.allocated), " in use by tensors, ",
            format_bytes(cached_before), " cached (released, then retried); the device has ",
            format_bytes(free_bytes), " free of ", format_bytes(total)));
      }
    }
    if (err != cudaSuccess)
      throw DeviceError(detail::concat("cudaMalloc(", size, " bytes) on cuda:", device,
                                       " failed: ", cudaGetErrorString(err)));
    cache.stats.reserved += size;
    ++cache.stats.device_mallocs;
  }
  cache.live.emplace(p, size);
  cache.stats.allocated += size;
  if (cache.stats.allocated > cache.stats.peak_allocated) cache.stats.peak_allocated = cache.stats.allocated;
  return p;
}

void device_free(void* ptr, int device) {
  if (!ptr) return;
  try {
    DeviceCache& cache = device_cache(device);
    std::lock_guard<std::mutex> lock(cache.mutex);
    auto it = cache.live.find(ptr);
    if (it == cache.live.end()) {
      std::fprintf(stderr, "mmfuse: warning: device_free of %p, not allocated on cuda:%d\n", ptr, device);
      return;
    }
    cache.free_blocks[it->second].push_back(ptr);
    cache.stats.allocated -= it->second;
    cache.live.erase(it);
  } catch (...) {
    // Called from destructors: never throw.
  }
}

AllocatorStats allocator_stats(int device) {
  DeviceCache& cache = device_cache(device);
  std::lock_guard<std::mutex> lock(cache.mutex);
  return cache.stats;
}

void reset_peak_stats(int device) {
  DeviceCache& cache = device_cache(device);
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.stats.peak_allocated = cache.stats.allocated;
}

void empty_cache(int device) {
  int n = device_count();
  for (int d = 0; d < n && d < kMaxDevices; ++d) {
    if (device >= 0 && d != device) continue;
    DeviceCache& cache = device_cache(d);
    std::lock_guard<std::mutex> lock(cache.mutex);
    release_cached_locked(d, cache);
  }
}

std::string allocator_summary(int device) {
  AllocatorStats s = allocator_stats(device);
  return detail::concat("cuda:", device, " allocator: ", format_bytes(s.allocated), " allocated, ",
                        format_bytes(s.reserved), " reserved (", format_bytes(s.cached()),
                        " cached), peak ", format_bytes(s.peak_allocated), " allocated; ",
                        s.device_mallocs, " cudaMalloc calls, ", s.cache_hits, " cache hits");
}

void print_allocator_stats(int device) { std::printf("%s\n", allocator_summary(device).c_str()); }

// ---- pinned host buffers ---------------------------------------------------------------------

namespace {

struct PinnedBlock {
  void* ptr = nullptr;
  cudaEvent_t ready = nullptr;  // recorded at free: the buffer's last queued use
};

// An event belongs to the device current at its creation and can only be recorded on that
// device's streams.
struct PinnedEvent {
  cudaEvent_t event = nullptr;
  int device = 0;
};

struct PinnedCache {
  std::mutex mutex;
  std::map<size_t, std::vector<PinnedBlock>> free_blocks;
  std::unordered_map<void*, size_t> live;
  std::unordered_map<void*, PinnedEvent> events;  // one event per buffer, reused
};

PinnedCache& pinned_cache() {
  static auto* cache = new PinnedCache;  // leaked, as the device caches
  return *cache;
}

void release_pinned_locked(PinnedCache& cache) {
  for (auto& [size, blocks] : cache.free_blocks) {
    for (PinnedBlock& b : blocks) {
      if (b.ready) {
        MMF_CUDA_CHECK(cudaEventSynchronize(b.ready));
        MMF_CUDA_CHECK(cudaEventDestroy(b.ready));
      }
      cache.events.erase(b.ptr);
      MMF_CUDA_CHECK(cudaFreeHost(b.ptr));
    }
  }
  cache.free_blocks.clear();
}

}  // namespace

void* pinned_alloc(size_t nbytes) {
  size_t size = allocation_size(nbytes);
  PinnedCache& cache = pinned_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  auto it = cache.free_blocks.find(size);
  if (it != cache.free_blocks.end() && !it->second.empty()) {
    PinnedBlock b = it->second.back();
    it->second.pop_back();
    // A copy queued before the free may still read or write the buffer.
    if (b.ready) MMF_CUDA_CHECK(cudaEventSynchronize(b.ready));
    cache.live.emplace(b.ptr, size);
    return b.ptr;
  }
  void* p = nullptr;
  cudaError_t err = cudaHostAlloc(&p, size, cudaHostAllocDefault);
  if (err != cudaSuccess) {
    cudaGetLastError();
    release_pinned_locked(cache);
    err = cudaHostAlloc(&p, size, cudaHostAllocDefault);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw DeviceError(detail::concat("pinned_alloc: cudaHostAlloc of ", format_bytes(nbytes),
                                     " failed: ", cudaGetErrorString(err)));
  }
  cache.live.emplace(p, size);
  return p;
}

void pinned_free(void* ptr) {
  if (!ptr) return;
  try {
    PinnedCache& cache = pinned_cache();
    std::lock_guard<std::mutex> lock(cache.mutex);
    auto it = cache.live.find(ptr);
    if (it == cache.live.end()) {
      std::fprintf(stderr, "mmfuse: warning: pinned_free of %p, not a pinned buffer\n", ptr);
      return;
    }
    PinnedBlock b{ptr, nullptr};
    if (device_count() > 0) {
      const int device = current_device();
      cudaStream_t s = stream(device);  // also makes sure the device's context exists
      PinnedEvent& ev = cache.events[ptr];
      if (ev.event && ev.device != device) {
        // Last freed under another device: that event cannot be recorded here. It has
        // completed (pinned_alloc waited for it before handing the buffer out again).
        MMF_CUDA_CHECK(cudaEventDestroy(ev.event));
        ev.event = nullptr;
      }
      if (!ev.event) {
        MMF_CUDA_CHECK(cudaEventCreateWithFlags(&ev.event, cudaEventDisableTiming));
        ev.device = device;
      }
      b.ready = ev.event;
      MMF_CUDA_CHECK(cudaEventRecord(b.ready, s));
    }
    cache.free_blocks[it->second].push_back(b);
    cache.live.erase(it);
  } catch (...) {
    // Called from destructors: never throw. Nor leave the failed call's error for the
    // thread's next launch check to report against an unrelated kernel.
    cudaGetLastError();
  }
}

void empty_pinned_cache() {
  PinnedCache& cache = pinned_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  release_pinned_locked(cache);
}

}  // namespace mmfuse::cuda
