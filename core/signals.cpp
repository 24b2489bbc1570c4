#include "core/signals.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mmfuse {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_snapshot{false};
// Set while a data-parallel solve runs: a stop signal also makes stdout and stderr non-blocking.
// On Ctrl-C, OpenMPI's mpirun stops draining the ranks' output before it kills them; a rank
// blocked writing its progress into the full pipe would never reach its snapshot. Non-blocking,
// the write fails (the line is lost; mpirun would not have shown it) and the rank goes on to
// the agreed stop and the snapshot. (fcntl is async-signal-safe; the descriptors are the
// launcher's pipes, never the user's terminal.)
std::atomic<bool> g_unblock_output_on_stop{false};

extern "C" void on_stop_signal(int) {
  const int saved_errno = errno;  // the interrupted code may be about to read it
  g_stop.store(true);
  if (g_unblock_output_on_stop.load()) {
    for (int fd : {STDOUT_FILENO, STDERR_FILENO}) {
      int flags = fcntl(fd, F_GETFL);
      if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    }
  }
  errno = saved_errno;
}
extern "C" void on_snapshot_signal(int) { g_snapshot.store(true); }

// One thread's alternate signal stack: set up on first use where the thread has none (someone
// else's, a sanitizer's say, is kept), taken down and freed when the thread ends.
class ThreadSignalStack {
 public:
  void ensure() {
    if (checked_) return;
    checked_ = true;
    if (has_signal_stack()) return;
    // The kernel's frame holds the whole register state (AVX-512: about 2.7 KiB, more with AMX);
    // _SC_SIGSTKSZ says what this machine needs, and the handlers themselves use little.
    size_t size = 64 * 1024;
#ifdef _SC_SIGSTKSZ
    long wanted = sysconf(_SC_SIGSTKSZ);
    if (wanted > 0) size = std::max(size, 4 * static_cast<size_t>(wanted));
#endif
    memory_ = std::malloc(size);
    if (!memory_) return;
    stack_t ss{};
    ss.ss_sp = memory_;
    ss.ss_size = size;
    if (sigaltstack(&ss, nullptr) != 0) {
      std::free(memory_);
      memory_ = nullptr;
    }
  }
  ~ThreadSignalStack() {
    if (!memory_) return;
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    std::free(memory_);
  }

 private:
  bool checked_ = false;
  void* memory_ = nullptr;
};

thread_local ThreadSignalStack t_signal_stack;

void install(int signal, void (*handler)(int), struct sigaction* old) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(signal, &sa, old);
}

}  // namespace

void use_signal_stacks() {
  t_signal_stack.ensure();
#ifdef _OPENMP
  // The team oneDNN and our kernels run on: libgomp keeps these threads for later regions of
  // up to this size, and threads it adds later inherit nothing, so the team is covered whole.
  if (!omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel
    t_signal_stack.ensure();
  }
#endif
}

bool has_signal_stack() {
  stack_t current{};
  return sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE);
}

SignalScope::SignalScope(bool install_handlers, bool unblock_output) {
  g_stop.store(false);
  g_snapshot.store(false);
  g_unblock_output_on_stop.store(unblock_output);
  if (!install_handlers) return;
  installed_ = true;
  use_signal_stacks();
  install(SIGINT, on_stop_signal, &old_int_);
  install(SIGTERM, on_stop_signal, &old_term_);  // what mpirun and Slurm send the ranks on Ctrl-C
  // OpenMPI's mpirun forwards SIGUSR1 to every rank and kills nothing (docs/distributed.md).
  install(SIGUSR1, on_stop_signal, &old_usr1_);
  install(SIGHUP, on_snapshot_signal, &old_hup_);
}

SignalScope::~SignalScope() {
  g_unblock_output_on_stop.store(false);
  if (!installed_) return;
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  sigaction(SIGUSR1, &old_usr1_, nullptr);
  sigaction(SIGHUP, &old_hup_, nullptr);
}

bool stop_requested() { return g_stop.load(); }
bool take_snapshot_request() { return g_snapshot.exchange(false); }
void request_snapshot() { g_snapshot.store(true); }
void request_stop() { g_stop.store(true); }

}  // namespace mmfuse
