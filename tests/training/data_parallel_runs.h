// What the launcher tests share (tests/training/test_distributed.cpp under mpirun,
// test_slurm.cpp under srun): the solvers and LeNet they train, the metrics and weights they
// compare, and background runs they stop or kill. Tolerances are stated where they are used.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/snapshot.h"
#include "doctest/doctest.h"
#include "tests/temp_dir.h"

namespace mmfuse::testing {

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_text(const TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
}

inline void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

// The occurrences of `text` in `log` (one a line for the progress and stop lines).
inline size_t count_of(const std::string& log, const std::string& text) {
  size_t n = 0;
  for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
  return n;
}

// The "loss" of each train record of a metrics file, by iteration.
inline std::map<int, double> metric_losses(const std::string& path) {
  std::map<int, double> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"test\"") != std::string::npos) continue;
    size_t i = line.find("\"iter\":"), l = line.find("\"loss\":");
    if (i == std::string::npos || l == std::string::npos) continue;
    out[std::stoi(line.substr(i + 7))] = std::stod(line.substr(l + 7));
  }
  return out;
}

// Each parameter of a .weights file by name.
inline std::map<std::string, std::vector<float>> weights_by_name(const std::string& path) {
  std::map<std::string, std::vector<float>> out;
  const proto::NetWeights file = read_weights(path);
  for (const auto& b : file.param()) {
    std::vector<float> v(b.data().begin(), b.data().end());
    for (double d : b.double_data()) v.push_back(static_cast<float>(d));
    out[b.name()] = v;
  }
  return out;
}

// The largest |a - b| / (1e-6 + 1e-5 |b|) over the parameters whose name contains `only`
// (all when empty): <= 1 means equal to the tolerance; 0 means bit-exact.
inline double weight_gap(const std::string& a_path, const std::string& b_path, const std::string& only = "") {
  auto a = weights_by_name(a_path), b = weights_by_name(b_path);
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (const auto& [name, va] : a) {
    if (!only.empty() && name.find(only) == std::string::npos) continue;
    REQUIRE_MESSAGE(b.count(name), name);
    const auto& vb = b.at(name);
    REQUIRE(va.size() == vb.size());
    for (size_t i = 0; i < va.size(); ++i) {
      double d = std::fabs(static_cast<double>(va[i]) - vb[i]);
      if (d > 0) worst = std::max(worst, d / (1e-6 + 1e-5 * std::fabs(vb[i])));
    }
  }
  return worst;
}

// The same iterations in both metrics files, with losses equal to a relative 1e-5.
inline void check_same_losses(const std::string& a_path, const std::string& b_path, int iterations) {
  auto a = metric_losses(a_path), b = metric_losses(b_path);
  REQUIRE(static_cast<int>(a.size()) == iterations);
  REQUIRE(static_cast<int>(b.size()) == iterations);
  for (const auto& [it, la] : a) {
    INFO("iteration ", it, ": ", la, " against ", b.at(it));
    CHECK(std::fabs(la - b.at(it)) <= 1e-5 * std::fabs(b.at(it)));
  }
}

// A solver of `iterations` steps with a loss record each, snapshots under out/<name>: SGD for
// LeNet, Adam (base_lr 0.001) for the fusion net, whose loss sums its pixels.
inline std::string data_parallel_solver(const std::string& net, const std::string& name, int iterations,
                                        const std::string& extra = "") {
  const bool lenet = net.find("lenet") != std::string::npos;
  return "net: \"" + net + "\"\ntype: \"" + (lenet ? "SGD" : "Adam") + "\"\nbase_lr: " + (lenet ? "0.01" : "0.001") +
         "\nmomentum: 0.9\nweight_decay: 0.0005\ndisplay: 1\n"
         "average_loss: 1\nmax_iter: " + std::to_string(iterations) + "\nsnapshot_prefix: \"out/" + name +
         "\"\nsolver_mode: CPU\nrandom_seed: 1\n" + extra;
}

// LeNet (models/lenet) with train and test batch `batch`.
inline std::string lenet_net(int batch) {
  std::string net = read_text((source_root() / "models/lenet/lenet_train_val.prototxt").string());
  replace_all(net, "batch_size: 64", "batch_size: " + std::to_string(batch));
  return net;
}

// Starts `cmd` in the background (its own process group); returns the shell's pid.
inline pid_t spawn_shell(const std::string& cmd) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits for `pid` at most `seconds`; its exit code (128 + the signal that ended it), or -1
// (then its process group is killed). `took`: the seconds waited.
inline int wait_for(pid_t pid, double seconds, double& took) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > seconds) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      took = seconds;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// The pid of a process named `comm` whose command line contains `marker` and whose environment
// holds `variable` (NAME=value), or -1: one rank of a test's job.
inline pid_t find_process(const std::string& comm, const std::string& marker, const std::string& variable) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (read_text(e.path().string() + "/comm") != comm + "\n") continue;
    if (read_text(e.path().string() + "/cmdline").find(marker) == std::string::npos) continue;
    if (('\0' + read_text(e.path().string() + "/environ")).find('\0' + variable + '\0') != std::string::npos)
      return static_cast<pid_t>(std::stoi(name));
  }
  return -1;
}

// Waits at most `seconds` until the file at `path` contains `text`; whether it did.
inline bool wait_for_text(const std::string& path, const std::string& text, double seconds) {
  for (int i = 0; i < static_cast<int>(seconds * 20); ++i) {
    if (read_text(path).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace mmfuse::testing
