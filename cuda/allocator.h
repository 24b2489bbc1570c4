// The caching device allocator and the pinned host-buffer cache (declarations; no CUDA
// headers). Included by cuda/runtime.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mmfuse::cuda {

// ---- device memory: the caching allocator ------------------------------------------------
// Sizes are rounded up to a bin (multiples of 512 B up to 1 MiB, of 2 MiB above); a freed
// block goes back to its bin and is handed out again without cudaMalloc/cudaFree. All work
// runs on the device's one compute stream, so a block freed while a queued kernel still uses
// it is only reused by work queued after that kernel (stream order). On cudaMalloc failure
// the cache is released and the allocation retried once; then DeviceError says how much was
// asked, in use and cached.
void* device_alloc(size_t nbytes, int device);
void device_free(void* ptr, int device);  // never throws

struct AllocatorStats {
  size_t allocated = 0;       // bytes in blocks handed out (rounded sizes)
  size_t reserved = 0;        // bytes obtained by cudaMalloc (allocated + cached)
  size_t peak_allocated = 0;  // high-water mark of `allocated` since start or reset_peak_stats
  size_t cached() const { return reserved - allocated; }
  int64_t device_mallocs = 0;  // cudaMalloc calls that succeeded
  int64_t cache_hits = 0;      // allocations served from a free list
};
AllocatorStats allocator_stats(int device);
void reset_peak_stats(int device);
// Returns every cached (free) block of `device` to the driver; device < 0: all devices.
void empty_cache(int device = -1);
// "cuda:0 allocator: 1.5 MiB allocated, 4 MiB reserved (2.5 MiB cached), peak 3 MiB, ..."
std::string allocator_summary(int device);
void print_allocator_stats(int device);  // allocator_summary on stdout
// The size a request is rounded to (the bin it lives in).
size_t allocation_size(size_t nbytes);
std::string format_bytes(size_t nbytes);  // "1.50 MiB"

// ---- pinned (page-locked) host buffers, cached the same way ------------------------------
// For input batches: a host→device copy from pinned memory is truly asynchronous. A freed
// buffer is reused only after the work queued on the current device's stream at free time
// has finished (an event is recorded at pinned_free and waited for at reuse).
void* pinned_alloc(size_t nbytes);
void pinned_free(void* ptr);  // never throws
void empty_pinned_cache();

}  // namespace mmfuse::cuda
