// cuBLAS, cuDNN and NCCL loaded on first use (cuda/libraries.cpp). mmfuse does not link them:
// each function it calls is defined in cuda/libraries.cpp under the library's own name, and
// resolves the real one with dlopen/dlsym the first time it is called, so a CPU run of a
// CUDA-enabled build maps none of them (cuBLAS alone costs ~140 MB of resident memory
// loaded; docs/cuda.md, "Libraries loaded on first use"). No CUDA headers here.
#pragma once
#include <vector>

namespace mmfuse::cuda {

struct LibrarySymbol {
  const char* library;  // soname, e.g. "libcublas.so.13" (the major version mmfuse was built with)
  const char* symbol;   // e.g. "cublasSgemm_v2"
};

// Every function of the three libraries that mmfuse calls, with the library that provides it
// (those of libraries not found at build time are absent).
const std::vector<LibrarySymbol>& lazy_symbols();

// The address of `symbol` in `library`, loading the library on its first use (RTLD_LOCAL: its
// symbols serve only these lookups). Throws DeviceError naming the library, the function and
// dlerror() when either is missing.
void* library_symbol(const char* library, const char* symbol);

// Whether `library` is loaded in this process (dlopen with RTLD_NOLOAD; loads nothing).
bool library_loaded(const char* library);

}  // namespace mmfuse::cuda
