// `mmfuse device_query`: what mmfuse sees of the GPUs — name, compute capability, memory,
// multiprocessors, driver, CUDA runtime, cuBLAS and cuDNN versions, and the precision
// switches. Exit 0 when none is visible (a report, not a failure).
#include <cstdio>

#include "base/error.h"
#include "tools/command.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace mmfuse::tools {
namespace {

#ifdef MMFUSE_WITH_CUDA
std::string version_str(size_t v, size_t major_div, size_t minor_div) {
  // CUDA: 13000 -> 13.0.0 (1000, 10); cuBLAS as encoded in version_info: 130100 -> 13.1.0;
  // cuDNN 9: 90300 -> 9.3.0 (10000, 100).
  char buf[48];
  std::snprintf(buf, sizeof buf, "%zu.%zu.%zu", v / major_div, v % major_div / minor_div, v % minor_div);
  return buf;
}
#endif

int device_query(const std::vector<std::string>& argv) {
  Args args("device_query", argv, {});
#ifndef MMFUSE_WITH_CUDA
  std::printf("mmfuse was built without CUDA: no GPU support in this binary\n");
  return 0;
#else
  int n = cuda::device_count();
  cuda::VersionInfo v{};
  bool have_versions = true;
  try {
    v = cuda::version_info();
  } catch (const DeviceError& e) {
    have_versions = false;
    std::printf("versions unavailable: %s\n", e.what());
  }
  if (have_versions) {
    std::printf("CUDA driver       %s\n", v.driver ? version_str(v.driver, 1000, 10).c_str() : "none");
    std::printf("CUDA runtime      %s\n", version_str(v.runtime, 1000, 10).c_str());
    std::printf("cuBLAS            %s\n", version_str(v.cublas, 10000, 100).c_str());
    if (v.cudnn)
      std::printf("cuDNN             %s (compiled against %s)\n", version_str(v.cudnn, 10000, 100).c_str(),
                  version_str(v.cudnn_compiled, 10000, 100).c_str());
    else
      std::printf("cuDNN             not built in (convolutions use im2col)\n");
  }
  std::printf("precision         matmul %s, convolution %s\n", cuda::precision_name(cuda::matmul_precision()),
              cuda::precision_name(cuda::conv_precision()));
  if (n == 0) {
    std::printf("no CUDA device visible\n");
    return 0;
  }
  for (int d = 0; d < n; ++d) {
    cuda::DeviceInfo info = cuda::device_info(d);
    std::printf("\ncuda:%d            %s\n", d, info.name.c_str());
    std::printf("  compute capability  %d.%d (sm_%d%d)\n", info.major, info.minor, info.major, info.minor);
    std::printf("  memory              %s total, %s free\n", cuda::format_bytes(info.total_memory).c_str(),
                cuda::format_bytes(info.free_memory).c_str());
    std::printf("  multiprocessors     %d\n", info.multiprocessors);
    std::printf("  clocks              %.0f MHz core, %.0f MHz memory, %d-bit bus\n", info.clock_khz / 1e3,
                info.memory_clock_khz / 1e3, info.memory_bus_width);
    std::printf("  L2 cache            %s\n", cuda::format_bytes(info.l2_cache_bytes).c_str());
  }
  return 0;
#endif
}

CommandRegistrar registrar({"device_query", "print the GPUs mmfuse sees, with driver and library versions",
                            "mmfuse device_query", device_query});

}  // namespace
}  // namespace mmfuse::tools
