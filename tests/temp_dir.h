// A fresh folder under the system temp dir for one test, removed when the test ends; the
// source tree's root; running the mmfuse binary; the message of an exception.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
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

// The mmfuse binary built beside the running test binary.
inline std::filesystem::path mmfuse_binary() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path() / "mmfuse";
}

// Runs `mmfuse args` in `dir` with one OpenMP thread; returns the exit status (-1: no normal
// exit), stdout and stderr (through dir/log.txt) in `out`.
inline int run_mmfuse(const std::filesystem::path& dir, const std::string& args, std::string& out) {
  const std::string log = (dir / "log.txt").string();
  const std::string cmd = "cd '" + dir.string() + "' && OMP_NUM_THREADS=1 '" + mmfuse_binary().string() + "' " + args +
                          " > '" + log + "' 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The message of the exception `f` throws ("" when none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace mmfuse::testing
