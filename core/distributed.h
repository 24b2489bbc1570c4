// Data-parallel training across processes (docs/distributed.md): the process's place in the
// job (rank, world size, local rank) and the collectives the solver, the data layers, SyncBN
// and evaluate() use. MPI carries them (MPI_Allreduce and friends on host buffers); CUDA
// gradients go through NCCL (cuda/nccl.h), whose communicator is bootstrapped here over MPI.
//
// Without a launcher, or in a build without MPI, world() is one process of one: every
// collective is the identity and costs nothing, so single-process code paths stay as they were.
//
// No collective waits forever: each polls its request and, after the timeout
// (SolverParameter.collective_timeout), stops the whole job with MPI_Abort and a message naming
// the operation and the ranks that did not answer. Rank 0 finds those: in the per-iteration
// exchange (agree_sum, point to point through rank 0) they are the ranks it has not heard
// from; after any other collective every rank still running sends rank 0 a word, and the
// silent ones are named. A rank other than 0 that hears nothing more names rank 0.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mmfuse::dist {

// The processes a launcher started: OMPI_COMM_WORLD_SIZE (OpenMPI's mpirun), PMI_SIZE (MPICH,
// Intel MPI), SLURM_STEP_NUM_TASKS (srun's job step; not SLURM_NTASKS, which a batch script
// or salloc shell has too); 1 when none is set.
int launcher_world_size();
// This process's rank among those on its machine (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID,
// SLURM_LOCALID); 0 when none is set. It picks the GPU.
int launcher_local_rank();
bool built_with_mpi();
bool built_with_nccl();

class World {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  bool is_root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }

  // Seconds a collective may take before the job is stopped (default 300).
  void set_timeout(double seconds) { timeout_ = seconds; }
  double timeout() const { return timeout_; }

  // Element-wise sums over the ranks, in place on every rank. `what` names the operation in a
  // timeout message ("gradient bucket 2 at iteration 17").
  void allreduce_sum(double* data, size_t n, const std::string& what);
  void allreduce_sum(float* data, size_t n, const std::string& what);
  // Several host buffers at once: all reductions are started, in the order given, then waited
  // for (the blocking form of the calls below, on requests of its own).
  void allreduce_sum(const std::vector<std::pair<float*, size_t>>& buffers, const std::string& what);
  // Non-blocking sums (the gradient buckets that start while backward runs): each call starts
  // one and returns at once; every rank must start the same ones in the same order, and each
  // buffer stays alive and untouched until wait_allreduces() has returned. progress() lets MPI
  // move the started ones along (it moves data only inside its calls: call it now and then
  // while computing). wait_allreduces() waits for all the started ones, with the timeout.
  void start_allreduce_sum(float* data, size_t n);
  void progress();
  void wait_allreduces(const std::string& what);
  // Rank 0's bytes to every rank.
  void broadcast(void* data, size_t bytes, const std::string& what);
  // The element-wise sum of a few values over the ranks, gathered by rank 0 point to point and
  // sent back: a rank that does not answer within the timeout is named by rank 0 in the error
  // that stops the job. Used once per iteration (loss, signal and divergence flags).
  std::vector<double> agree_sum(std::vector<double> values, const std::string& what);
  // Prints "mmfuse: error: rank R: message" and stops every rank of the job with `code`.
  [[noreturn]] void abort(const std::string& message, int code = 4);

  // The process-wide NCCL communicator on `device` (created on first use, collectively: every
  // rank must ask in the same order). Only in a build with NCCL; throws otherwise.
  void* nccl_comm(int device);

 private:
  friend World& init(double timeout_seconds);
  friend void finalize();
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  double timeout_ = 300;
  void* comm_ = nullptr;  // the MPI communicator (a dup of MPI_COMM_WORLD)
  void* nccl_ = nullptr;
  std::shared_ptr<void> pending_;  // the started MPI requests (std::vector<MPI_Request>)
  int nccl_device_ = -1;
};

// The process's place in the job; one process of one until init() found a launcher.
World& world();
// Joins the job when a launcher started more than one process (MPI_Init, a private duplicate
// of MPI_COMM_WORLD), else leaves world() single. Throws Error naming the launcher's variable
// when more than one process was started and this build has no MPI. Idempotent.
World& init(double timeout_seconds = 300);
// Leaves MPI (after the last collective); a no-op for a single process.
void finalize();

}  // namespace mmfuse::dist
