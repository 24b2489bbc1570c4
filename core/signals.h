// The signals a training run answers (SIGINT, SIGTERM and SIGUSR1: stop with a snapshot; SIGHUP:
// a snapshot and go on), as flags the training loop reads between iterations.
//
// The handlers run on an alternate signal stack (SA_ONSTACK) on the thread that installs them and
// on every thread of its OpenMP team. Some of oneDNN's JIT GEMM kernels (the sgemm behind
// dnnl_sgemm and the gemm-based convolutions, oneDNN up to 3.11) point the stack pointer into a
// heap buffer while they run; a signal delivered there on the ordinary stack writes its frame
// over the heap below that buffer, and a later free() aborts with "corrupted size vs. prev_size"
// (oneDNN issue 4845). A program that installs handlers of its own around mmfuse's CPU kernels
// needs the same: SA_ONSTACK in its sigaction and use_signal_stacks() on its computing threads.
#pragma once

#include <csignal>

namespace mmfuse {

// The handlers, installed for the scope's life (the previous ones put back after it); the flags
// cleared at its start. With `unblock_output`, a stop signal also makes stdout and stderr
// non-blocking (a data-parallel rank must reach its snapshot even when its launcher stopped
// reading its output: core/signals.cpp).
class SignalScope {
 public:
  SignalScope(bool install, bool unblock_output);
  ~SignalScope();
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  bool installed_ = false;
  struct sigaction old_int_ {}, old_term_ {}, old_usr1_ {}, old_hup_ {};
};

bool stop_requested();          // SIGINT, SIGTERM or SIGUSR1 seen (or request_stop())
bool take_snapshot_request();   // SIGHUP seen (or request_snapshot()) since the last call
void request_snapshot();        // as SIGHUP
void request_stop();            // as SIGINT or SIGTERM

// Gives the calling thread, and every thread of its OpenMP team, an alternate signal stack of
// its own where it has none (kept for the thread's life). Cheap after the first call per thread.
void use_signal_stacks();

// Whether the calling thread has an alternate signal stack (for tests).
bool has_signal_stack();

}  // namespace mmfuse
