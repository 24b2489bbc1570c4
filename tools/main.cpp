// mmfuse: the command-line tool. Subcommands register themselves (tools/command.h).
#include <cstdio>
#include <exception>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "tools/command.h"

namespace {

// glibc returns every freed block of 128 KiB and more to the system (munmap, or a trim of the
// heap's top) and takes it back at the next allocation, page by page: a training step, which
// frees and allocates the same activations every iteration, paid about 1,800 page faults for
// it (the main job, 1 thread: 3.4 ms of a 61 ms step outside the layers, 2.3 ms with this).
// Blocks up to 32 MiB (glibc's cap for this setting) now come from the heap and freed memory
// stays with the process: its resident size is its peak, as with PyTorch's or our CUDA
// caching allocator. A program embedding the library keeps its own malloc policy.
void keep_freed_memory() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  try {
    return mmfuse::tools::run_command(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mmfuse: error: %s\n", e.what());
    return 1;
  }
}
