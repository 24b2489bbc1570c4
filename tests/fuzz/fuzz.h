// What the fuzzers share. A fuzzer (tests/fuzz/<name>.cpp, built as fuzz_<name> with
// -DMMFUSE_FUZZ=ON) feeds its input to one reader of untrusted bytes; an mmfuse::Error is the
// expected answer to a malformed input. A crash, a sanitizer report, a hang, or any other
// exception (std::bad_alloc, std::out_of_range, ...) reaching libFuzzer is a finding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "base/error.h"
#include "core/prototxt.h"

namespace mmfuse::fuzz {

inline std::string text_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// Runs `body`, swallowing the framework's own errors (the documented outcome of bad input);
// MMFUSE_FUZZ_VERBOSE=1 prints them (why a seed stops early).
template <typename Body>
bool expect_ok_or_error(Body&& body) {
  try {
    body();
    return true;
  } catch (const mmfuse::Error& e) {
    static const bool verbose = std::getenv("MMFUSE_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "mmfuse::Error: %s\n", e.what());
    return false;
  }
}

// The small net of tests/fuzz/snapshot_net.prototxt, read once: what the snapshot and caffe
// fuzzers load their inputs into.
inline const proto::NetParameter& snapshot_net_param() {
  static const proto::NetParameter param =
      read_net((std::filesystem::path(__FILE__).parent_path() / "snapshot_net.prototxt").string());
  return param;
}

}  // namespace mmfuse::fuzz
