// The signals a training run answers (core/signals.h): the handlers and where they run. Signals
// delivered while oneDNN's JIT GEMM kernels run once corrupted the heap (their frame written
// below a stack pointer those kernels point into the heap): a rank stopped by scancel aborted
// with "corrupted size vs. prev_size" a few iterations later.
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/cpu/dnnl.h"
#include "core/cpu/gemm.h"
#include "core/signals.h"
#include "doctest/doctest.h"

using namespace mmfuse;

namespace {

struct sigaction current_action(int signal) {
  struct sigaction now {};
  sigaction(signal, nullptr, &now);
  return now;
}

// The pthreads of the calling thread's OpenMP team (the calling thread first).
std::vector<pthread_t> team_threads() {
  std::vector<pthread_t> threads{pthread_self()};
#ifdef _OPENMP
  std::mutex m;
#pragma omp parallel
  {
    if (omp_get_thread_num() != 0) {
      std::lock_guard<std::mutex> lock(m);
      threads.push_back(pthread_self());
    }
  }
#endif
  return threads;
}

}  // namespace

TEST_CASE("signals: the handlers run on an alternate stack, on the solving thread and its whole OpenMP team") {
  const struct sigaction before = current_action(SIGUSR1);
  {
    SignalScope scope(/*install=*/true, /*unblock_output=*/false);
    for (int signal : {SIGINT, SIGTERM, SIGUSR1, SIGHUP}) {
      const struct sigaction now = current_action(signal);
      CHECK((now.sa_flags & SA_ONSTACK) != 0);
      CHECK((now.sa_handler != SIG_DFL && now.sa_handler != SIG_IGN));
    }
    CHECK(has_signal_stack());
    std::atomic<int> without{0}, threads{0};
#ifdef _OPENMP
#pragma omp parallel
    {
      threads.fetch_add(1);
      if (!has_signal_stack()) without.fetch_add(1);
    }
#endif
    INFO(threads.load(), " threads in the team");
    CHECK(without.load() == 0);
    // The flags: a SIGHUP asks for one snapshot, a SIGUSR1 for the stop.
    CHECK(!take_snapshot_request());
    std::raise(SIGHUP);
    CHECK(take_snapshot_request());
    CHECK(!take_snapshot_request());
    CHECK(!stop_requested());
    std::raise(SIGUSR1);
    CHECK(stop_requested());
  }
  // The previous handlers are back, and a new scope starts with clear flags.
  CHECK((current_action(SIGUSR1).sa_handler == before.sa_handler));
  SignalScope again(/*install=*/false, /*unblock_output=*/false);
  CHECK(!stop_requested());
}

TEST_CASE("signals: thousands of them during float32 GEMMs (oneDNN's JIT kernels where built) leave the heap whole") {
  // Without SA_ONSTACK this aborted within the first thousand signals on AVX-512 and AVX2 x86-64
  // with Debian's oneDNN 2.6: shapes as LeNet's ip1, which oneDNN's sgemm runs with its stack
  // pointer in a heap buffer.
  INFO("oneDNN ", cpu::dnnl_enabled() ? "on" : "not built or off", " for float32 gemm");
  SignalScope scope(/*install=*/true, /*unblock_output=*/false);
  const std::vector<pthread_t> threads = team_threads();
  std::atomic<bool> done{false};
  std::atomic<long> sent{0};
  std::thread sender([&] {
    for (size_t i = 0; !done.load(); ++i) {
      pthread_kill(threads[i % threads.size()], SIGHUP);
      sent.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  });
  const int64_t M = 8, N = 500, K = 800;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(600);
  std::atomic<long> products{0};
#ifdef _OPENMP
#pragma omp parallel
#endif
  {
    // Each thread its own products (inside the region gemm runs on the calling thread), with
    // allocations around them: a frame written over the heap makes malloc or free abort.
    std::vector<float> A(M * K, 0.25f), B(N * K, 0.5f), C(M * N);
    bool transpose = false;
    while (std::chrono::steady_clock::now() < until) {
      cpu::gemm<float>(false, transpose, M, N, K, 1.f, A.data(), K, B.data(), transpose ? K : N, 0.f, C.data(), N);
      transpose = !transpose;
      std::vector<char> churn(64 + static_cast<size_t>(products.fetch_add(1) % 4096), 1);
    }
  }
  done.store(true);
  sender.join();
  INFO(sent.load(), " signals to ", threads.size(), " threads during ", products.load(), " products");
  CHECK(sent.load() > 1000);
  CHECK(take_snapshot_request());
  // The heap is whole: allocations of many sizes, then their release.
  std::vector<std::vector<float>> blocks;
  for (int i = 0; i < 2000; ++i) blocks.emplace_back(static_cast<size_t>(1 + (i * 37) % 5000), 1.f);
  blocks.clear();
}
