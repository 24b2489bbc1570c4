// A fresh folder under the system temp dir for one test, removed when the test ends; the
// source tree's root.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

namespace mmfuse::testing {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name) {
    path = std::filesystem::temp_directory_path() / ("mmfuse_test_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// The source tree's root (models/, docs/, tests/fuzz/corpus/ are read from it): CMake's absolute
// source folder, so that mmfuse_tests runs from any working directory (__FILE__ can be relative).
inline std::filesystem::path source_root() { return MMFUSE_SOURCE_DIR; }

}  // namespace mmfuse::testing
