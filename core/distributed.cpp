#include "core/distributed.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "base/error.h"
#include "base/format.h"
#include "cuda/nccl.h"
#ifdef MMFUSE_WITH_MPI
#include <mpi.h>
#endif

namespace mmfuse::dist {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return end && *end == '\0' && n >= 0 ? static_cast<int>(n) : fallback;
}

// The first launcher variable that is set, with its value. Slurm's is the job step's task count,
// which only srun sets: SLURM_NTASKS is also in a batch script's or salloc shell's environment,
// where `mmfuse train` run directly is one process of the allocation, not one of N.
std::pair<const char*, int> launcher_size_variable() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"})
    if (int n = env_int(name, -1); n >= 0) return {name, n};
  return {nullptr, 1};
}

}  // namespace

int launcher_world_size() { return std::max(1, launcher_size_variable().second); }

int launcher_local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
    if (int n = env_int(name, -1); n >= 0) return n;
  return 0;
}

bool built_with_mpi() {
#ifdef MMFUSE_WITH_MPI
  return true;
#else
  return false;
#endif
}

bool built_with_nccl() { return cuda::kWithNccl; }

World& world() {
  static World w;
  return w;
}

#ifdef MMFUSE_WITH_MPI

namespace {

MPI_Comm comm_of(const World&, void* comm) { return *static_cast<MPI_Comm*>(comm); }

using Clock = std::chrono::steady_clock;
constexpr int kAgreeTag = 7101, kAliveTag = 7102;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Polls until `done()`, at most `seconds`; false when the time ran out. The poll backs off to a
// 200 us sleep so that a waiting rank leaves its core to the others (2 ranks on 2 cores).
template <typename Done>
bool poll(Done done, double seconds) {
  const auto start = Clock::now();
  int pause_us = 0;
  while (!done()) {
    if (seconds_since(start) > seconds) return false;
    if (pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
    pause_us = std::min(200, pause_us * 2 + 1);
  }
  return true;
}

// After a collective timed out, the ranks that cannot say so: every rank still running sends
// rank 0 a word; rank 0 names those it has not heard from after `grace` seconds (the other
// ranks time out about when it does, give or take an iteration's work).
std::string silent_ranks(World& w, MPI_Comm comm, double grace) {
  std::vector<int> words(static_cast<size_t>(w.size()));
  std::vector<MPI_Request> heard(static_cast<size_t>(w.size() - 1), MPI_REQUEST_NULL);
  for (int r = 1; r < w.size(); ++r)
    MPI_Irecv(&words[static_cast<size_t>(r)], 1, MPI_INT, r, kAliveTag, comm, &heard[static_cast<size_t>(r - 1)]);
  std::vector<int> flags(heard.size(), 0);
  poll([&] {
    int all = 1;
    for (size_t i = 0; i < heard.size(); ++i) {
      if (!flags[i]) MPI_Test(&heard[i], &flags[i], MPI_STATUS_IGNORE);
      all &= flags[i];
    }
    return all != 0;
  }, grace);
  std::string silent;
  for (size_t i = 0; i < heard.size(); ++i)
    if (!flags[i]) silent += (silent.empty() ? "" : ", ") + std::to_string(i + 1);
  return silent;
}

// Polls `requests` until all complete. Past `timeout` seconds the job stops: rank 0 names
// `what` and the ranks that did not answer (`missing`, or those silent_ranks finds); another
// rank tells rank 0 it is alive and waits for rank 0 to stop the job, naming rank 0 itself if
// that does not come.
template <typename Missing>
void wait_all(World& w, MPI_Comm comm, std::vector<MPI_Request>& requests, const std::string& what, double timeout,
              Missing missing) {
  auto complete = [&] {
    int done = 0;
    MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
    return done != 0;
  };
  if (poll(complete, timeout)) return;
  const std::string head = what + " did not complete within " + format_number("%g", timeout) + " s (collective_timeout)";
  if (w.rank() == 0) {
    std::string silent = missing();
    if (silent.empty()) silent = silent_ranks(w, comm, timeout / 2 + 1);
    w.abort(head + (silent.empty() ? std::string(": every rank is alive but one did not join (mismatched collectives?)")
                                   : ": rank " + silent + " did not answer (dead or stalled)") +
            "; stopping every rank");
  }
  int word = w.rank();
  MPI_Request alive = MPI_REQUEST_NULL;
  MPI_Isend(&word, 1, MPI_INT, 0, kAliveTag, comm, &alive);
  poll([] { return false; }, timeout);  // rank 0 stops the job meanwhile
  w.abort(head + ": rank 0 did not answer (dead or stalled); stopping every rank");
}

std::string no_ranks() { return ""; }

}  // namespace

World& init(double timeout_seconds) {
  World& w = world();
  w.timeout_ = timeout_seconds;
  if (w.comm_ || launcher_world_size() <= 1) return w;
  const auto [variable, launched] = launcher_size_variable();
#ifdef OPEN_MPI
  // srun without a PMI the ranks can reach each other through (--mpi=none, the default of
  // many slurm.conf files): Open MPI's MPI_Init stops with a message about rebuilding Slurm.
  // Say what to type first (once, from task 0; Open MPI built with Slurm's PMI-1 still joins).
  if (std::string(variable) == "SLURM_STEP_NUM_TASKS" && !std::getenv("PMIX_RANK") && !std::getenv("PMI_FD") &&
      env_int("SLURM_PROCID", 0) == 0)
    std::fprintf(stderr,
                 "mmfuse: note: srun started %d tasks without PMIx (no PMIX_RANK): Open MPI's ranks find each "
                 "other through it; launch with `srun --mpi=pmix` (`srun --mpi=list` shows this Slurm's "
                 "plugins; docs/distributed.md)\n",
                 launched);
#endif
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // Only the main thread calls MPI (prefetch workers and OpenMP threads never do).
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  }
  auto* comm = new MPI_Comm;
  MPI_Comm_dup(MPI_COMM_WORLD, comm);
  // Errors come back as codes (MPI's default aborts without saying which operation failed).
  MPI_Comm_set_errhandler(*comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(*comm, &w.rank_);
  MPI_Comm_size(*comm, &w.size_);
  w.comm_ = comm;
  // A launcher whose processes MPI did not join into one job (an MPI without the launcher's
  // PMI makes each a job of its own): N copies would each train alone on the whole data and
  // write the same snapshots. Each says so and stops.
  if (w.size_ != launched)
    w.abort("the launcher started " + std::to_string(launched) + " processes (" + variable + "), but MPI joined " +
            std::to_string(w.size_) + " of them into this process's job: this MPI cannot reach the launcher's " +
            "process manager (under srun: `srun --mpi=pmix`, see `srun --mpi=list`; docs/distributed.md)");
  w.local_rank_ = launcher_local_rank();
  return w;
}

void finalize() {
  World& w = world();
  if (!w.comm_) return;
#ifdef MMFUSE_WITH_NCCL
  if (w.nccl_) cuda::nccl_destroy(w.nccl_);
#endif
  w.nccl_ = nullptr;
  auto* comm = static_cast<MPI_Comm*>(w.comm_);
  MPI_Comm_free(comm);
  delete comm;
  w.comm_ = nullptr;
  MPI_Finalize();
  w.rank_ = 0;
  w.size_ = 1;
}

void World::abort(const std::string& message, int code) {
  std::fprintf(stderr, "mmfuse: error: rank %d of %d: %s\n", rank_, size_, message.c_str());
  std::fflush(stderr);
  if (comm_) MPI_Abort(comm_of(*this, comm_), code);
  std::_Exit(code);
}

namespace {
std::vector<MPI_Request>& requests_of(std::shared_ptr<void>& pending) {
  if (!pending) pending = std::make_shared<std::vector<MPI_Request>>();
  return *static_cast<std::vector<MPI_Request>*>(pending.get());
}
// Starts the in-place sum of `data` and appends its request to `requests`.
void start_sum(MPI_Comm comm, float* data, size_t n, std::vector<MPI_Request>& requests) {
  MMF_CHECK(n <= static_cast<size_t>(INT_MAX), Error, "all-reduce of ", n, " floats in one message; MPI counts are int");
  requests.push_back(MPI_REQUEST_NULL);
  MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm, &requests.back());
}
}  // namespace

void World::start_allreduce_sum(float* data, size_t n) {
  if (size_ > 1 && n > 0) start_sum(comm_of(*this, comm_), data, n, requests_of(pending_));
}

void World::progress() {
  if (!pending_ || requests_of(pending_).empty()) return;
  std::vector<MPI_Request>& requests = requests_of(pending_);
  int done = 0;
  MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
}

void World::wait_allreduces(const std::string& what) {
  if (!pending_ || requests_of(pending_).empty()) return;
  std::vector<MPI_Request>& requests = requests_of(pending_);
  wait_all(*this, comm_of(*this, comm_), requests, what, timeout_, no_ranks);
  requests.clear();
}

// Its own requests: the started ones (start_allreduce_sum) are not waited for here.
void World::allreduce_sum(const std::vector<std::pair<float*, size_t>>& buffers, const std::string& what) {
  if (size_ <= 1 || buffers.empty()) return;
  std::vector<MPI_Request> requests;
  for (const auto& [data, n] : buffers)
    if (n > 0) start_sum(comm_of(*this, comm_), data, n, requests);
  wait_all(*this, comm_of(*this, comm_), requests, what, timeout_, no_ranks);
}

void World::allreduce_sum(float* data, size_t n, const std::string& what) { allreduce_sum({{data, n}}, what); }

void World::allreduce_sum(double* data, size_t n, const std::string& what) {
  if (size_ <= 1 || n == 0) return;
  std::vector<MPI_Request> request(1, MPI_REQUEST_NULL);
  MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, comm_of(*this, comm_), &request[0]);
  wait_all(*this, comm_of(*this, comm_), request, what, timeout_, no_ranks);
}

void World::broadcast(void* data, size_t bytes, const std::string& what) {
  if (size_ <= 1 || bytes == 0) return;
  std::vector<MPI_Request> request(1, MPI_REQUEST_NULL);
  MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, 0, comm_of(*this, comm_), &request[0]);
  wait_all(*this, comm_of(*this, comm_), request, what, timeout_, no_ranks);
}

std::vector<double> World::agree_sum(std::vector<double> values, const std::string& what) {
  if (size_ <= 1) return values;
  MPI_Comm comm = comm_of(*this, comm_);
  const int n = static_cast<int>(values.size());
  if (rank_ == 0) {
    std::vector<std::vector<double>> got(static_cast<size_t>(size_), std::vector<double>(values.size()));
    std::vector<MPI_Request> requests(static_cast<size_t>(size_ - 1), MPI_REQUEST_NULL);
    for (int r = 1; r < size_; ++r)
      MPI_Irecv(got[r].data(), n, MPI_DOUBLE, r, kAgreeTag, comm, &requests[static_cast<size_t>(r - 1)]);
    wait_all(*this, comm, requests, what, timeout_, [&] {
      std::string silent;
      for (int r = 1; r < size_; ++r) {
        int done = 1;
        if (requests[static_cast<size_t>(r - 1)] != MPI_REQUEST_NULL)
          MPI_Test(&requests[static_cast<size_t>(r - 1)], &done, MPI_STATUS_IGNORE);
        if (!done) silent += (silent.empty() ? "" : ", ") + std::to_string(r);
      }
      return silent;
    });
    // Summed in rank order: the same bits on every run.
    for (int r = 1; r < size_; ++r)
      for (size_t i = 0; i < values.size(); ++i) values[i] += got[r][i];
    std::vector<MPI_Request> sends(static_cast<size_t>(size_ - 1), MPI_REQUEST_NULL);
    for (int r = 1; r < size_; ++r)
      MPI_Isend(values.data(), n, MPI_DOUBLE, r, kAgreeTag, comm, &sends[static_cast<size_t>(r - 1)]);
    wait_all(*this, comm, sends, what + " (sending the result)", timeout_, no_ranks);
    return values;
  }
  std::vector<double> result(values.size());
  std::vector<MPI_Request> requests(2, MPI_REQUEST_NULL);
  MPI_Isend(values.data(), n, MPI_DOUBLE, 0, kAgreeTag, comm, &requests[0]);
  MPI_Irecv(result.data(), n, MPI_DOUBLE, 0, kAgreeTag, comm, &requests[1]);
  wait_all(*this, comm, requests, what, timeout_, no_ranks);
  return result;
}

void* World::nccl_comm(int device) {
#ifndef MMFUSE_WITH_NCCL
  throw Error("rank " + std::to_string(rank_) + ": cuda:" + std::to_string(device) +
              " gradients need NCCL to be reduced across ranks, and this build of mmfuse has none");
#else
  if (nccl_) {
    MMF_CHECK(device == nccl_device_, Error, "rank ", rank_, ": NCCL communicator made for cuda:", nccl_device_,
              ", asked for cuda:", device, " (one GPU per rank)");
    return nccl_;
  }
  std::vector<char> id(cuda::kNcclIdBytes);
  if (rank_ == 0) id = cuda::nccl_unique_id();
  broadcast(id.data(), id.size(), "broadcast of the NCCL id");
  nccl_ = cuda::nccl_init(id, size_, rank_, device);
  nccl_device_ = device;
  return nccl_;
#endif
}

#else  // no MPI: one process of one

World& init(double timeout_seconds) {
  World& w = world();
  w.timeout_ = timeout_seconds;
  auto [variable, n] = launcher_size_variable();
  MMF_CHECK(n <= 1, Error, "started as one of ", n, " processes (", variable,
            "), but this build of mmfuse has no MPI: each process would train alone on the whole data. "
            "Install OpenMPI (scripts/install-deps) and rebuild, or run a single process");
  return w;
}

void finalize() {}

void World::abort(const std::string& message, int code) {
  std::fprintf(stderr, "mmfuse: error: %s\n", message.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}
void World::allreduce_sum(double*, size_t, const std::string&) {}
void World::allreduce_sum(float*, size_t, const std::string&) {}
void World::allreduce_sum(const std::vector<std::pair<float*, size_t>>&, const std::string&) {}
void World::start_allreduce_sum(float*, size_t) {}
void World::progress() {}
void World::wait_allreduces(const std::string&) {}
void World::broadcast(void*, size_t, const std::string&) {}
std::vector<double> World::agree_sum(std::vector<double> values, const std::string&) { return values; }
void* World::nccl_comm(int) {
  throw Error("NCCL needs MPI to start its communicator, and this build of mmfuse has no MPI");
}

#endif

}  // namespace mmfuse::dist
