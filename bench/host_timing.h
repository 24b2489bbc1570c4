// The host-clock timer the CPU benches share: the median of `runs` timed calls after
// `warmups` untimed ones (first-touch allocations, thread start, oneDNN primitive creation).
#pragma once
#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace mmfuse::bench {

inline double median_ms(const std::function<void()>& f, int runs, int warmups = 1) {
  for (int i = 0; i < warmups; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < std::max(runs, 1); ++i) {
    auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace mmfuse::bench
