// Device scratch memory from the caching allocator, returned when it goes out of scope. Stream
// order keeps it valid for the kernels already queued on the device's one compute stream (a
// block is only handed out again to work queued after them). For cuda/ only.
#pragma once
#include <cstddef>

#include "cuda/allocator.h"

namespace mmfuse::cuda {

class Scratch {
 public:
  Scratch() = default;
  Scratch(size_t nbytes, int device) : device_(device) {
    if (nbytes > 0) ptr_ = device_alloc(nbytes, device);
  }
  ~Scratch() {
    if (ptr_) device_free(ptr_, device_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T = void>
  T* get() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  int device_ = 0;
};

}  // namespace mmfuse::cuda
