// Fuzzes the .npy reader (core/npy.h): decode_npy is the code load_npy runs on a file's bytes.
// A decoded array is saved and read back, which must give the same dtype, shape and bytes.
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "core/npy.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmfuse;
  Tensor t;
  if (!fuzz::expect_ok_or_error([&] { t = decode_npy(data, size, "fuzz.npy"); })) return 0;
  if (t.nbytes() > (1 << 20)) return 0;  // the round trip below is for small arrays
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("mmfuse_fuzz_npy_" + std::to_string(getpid()) + ".npy")).string();
  save_npy(path, t);
  Tensor back = load_npy(path);
  if (back.dtype() != t.dtype() || back.shape() != t.shape() ||
      (t.nbytes() && std::memcmp(back.raw_data(), t.raw_data(), t.nbytes()) != 0))
    __builtin_trap();
  return 0;
}
