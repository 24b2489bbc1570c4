// cuBLAS, cuDNN and NCCL loaded on first use (cuda/libraries.cpp), tested without a GPU: every
// forwarded function resolves in the installed library (dlopen/dlsym need no device), none of
// the forwarders is visible to the dynamic linker (so the libraries' own calls cannot bind to
// them), a missing library or function is an error naming it, and a CPU run maps none of the
// libraries (in a fresh process: this one may have loaded them in the tests before).
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "tests/gradcheck.h"
#include "tests/temp_dir.h"

#ifdef MMFUSE_WITH_CUDA
#include "cuda/libraries.h"

using namespace mmfuse;

namespace {

std::set<std::string> lazy_libraries() {
  std::set<std::string> names;
  for (const auto& s : cuda::lazy_symbols()) names.insert(s.library);
  return names;
}

constexpr const char* kChildVariable = "MMFUSE_TEST_LAZY_LIBRARIES_CHILD";

}  // namespace

TEST_CASE("lazy CUDA libraries: every forwarded function resolves, and none is exported") {
  const auto& symbols = cuda::lazy_symbols();
  std::set<std::string> names;
  for (const auto& s : symbols) names.insert(s.symbol);
  CHECK(names.count("cublasSgemm_v2") == 1);
#ifdef MMFUSE_WITH_CUDNN
  CHECK(names.count("cudnnConvolutionForward") == 1);
#endif
#ifdef MMFUSE_WITH_NCCL
  CHECK(names.count("ncclAllReduce") == 1);
#endif
  for (const auto& s : symbols) {
    CAPTURE(s.library);
    CAPTURE(s.symbol);
    void* address = nullptr;
    CHECK_NOTHROW(address = cuda::library_symbol(s.library, s.symbol));
    CHECK(address != nullptr);
    CHECK(cuda::library_loaded(s.library));
    // Neither our forwarder (hidden) nor the library's function (RTLD_LOCAL) is in the global
    // scope, where a library's call to the name would look it up.
    CHECK(dlsym(RTLD_DEFAULT, s.symbol) == nullptr);
  }
}

TEST_CASE("lazy CUDA libraries: a missing library or function is an error naming it") {
  std::string e = testing::error_of([] { cuda::library_symbol("libmmfuse_missing.so.7", "cublasCreate_v2"); });
  CHECK(e.find("cannot load libmmfuse_missing.so.7") != std::string::npos);
  CHECK(e.find("cublasCreate_v2") != std::string::npos);
  const char* cublas = cuda::lazy_symbols().front().library;
  e = testing::error_of([&] { cuda::library_symbol(cublas, "cublasNoSuchFunction"); });
  CHECK(e.find(std::string(cublas) + " has no function cublasNoSuchFunction") != std::string::npos);
}

TEST_CASE("lazy CUDA libraries: a CPU run maps none of them (child)") {
  if (!std::getenv(kChildVariable)) return;  // run by the next test case, in a fresh process
  // CPU work of every kind that has a CUDA twin: convolution, matmul, loss, backward.
  Generator gen(3);
  Tensor x = Tensor::randn({2, 3, 8, 8}, gen, 0, 1).set_requires_grad();
  Tensor w = Tensor::randn({4, 3, 3, 3}, gen, 0, 1).set_requires_grad();
  Tensor y = conv2d(x, w, Tensor(), Conv2dOptions{.pad_h = 1, .pad_w = 1});
  Tensor logits = matmul(y.reshape({2, 256}), Tensor::randn({256, 5}, gen, 0, 1));
  cross_entropy(logits, Tensor::from_vector<int32_t>({1, 4}, {2}), -100, Reduction::mean).backward();
  REQUIRE(x.grad().defined());
  std::ifstream maps("/proc/self/maps");
  std::string line, mapped;
  while (std::getline(maps, line))
    for (const auto& library : lazy_libraries())
      if (line.find(library.substr(0, library.find(".so"))) != std::string::npos) mapped += line + "\n";
  CHECK_MESSAGE(mapped.empty(), "mapped by a CPU run:\n", mapped);
  for (const auto& library : lazy_libraries()) CHECK_MESSAGE(!cuda::library_loaded(library.c_str()), library);
}

TEST_CASE("lazy CUDA libraries: a CPU run maps none of them") {
  if (std::getenv(kChildVariable)) return;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string command = std::string(kChildVariable) + "=1 '" + self +
                              "' --no-version '-tc=lazy CUDA libraries: a CPU run maps none of them (child)'" +
                              " > /dev/null 2>&1";
  CHECK(std::system(command.c_str()) == 0);
}

#endif  // MMFUSE_WITH_CUDA
