// NCCL collectives for data-parallel training on GPUs (docs/distributed.md): the raw-pointer
// interface core/distributed.cpp and the gradient reducer call. No CUDA or NCCL headers here;
// every build includes it, and where NCCL is absent (kWithNccl false) the definitions are not
// compiled and the callers do not reach them.
#pragma once
#include <cstddef>
#include <vector>

namespace mmfuse::cuda {

#ifdef MMFUSE_WITH_NCCL
inline constexpr bool kWithNccl = true;
#else
inline constexpr bool kWithNccl = false;
#endif
inline constexpr size_t kNcclIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES

// Rank 0's ncclGetUniqueId, to be broadcast (over MPI) to the other ranks.
std::vector<char> nccl_unique_id();
// ncclCommInitRank on `device` with the broadcast id; the communicator as an opaque handle.
void* nccl_init(const std::vector<char>& id, int ranks, int rank, int device);
void nccl_destroy(void* comm);
// In-place sum of n float32 values over the ranks, queued on `device`'s communication stream
// behind an event on the compute stream, so it starts once the kernels queued before it (the
// ones that wrote `data`) are done, and runs beside the backward kernels queued after it (no
// host synchronisation). The result is ready after nccl_wait.
void nccl_allreduce_sum(float* data, size_t n, void* comm, int device);
// Rank 0's bytes to every rank, on the communication stream likewise.
void nccl_broadcast(void* data, size_t bytes, void* comm, int device);
// Waits for the communication stream, at most `timeout` seconds; past that (a rank died or stalled)
// aborts the communicator and throws DeviceError naming `what`. Polls ncclCommGetAsyncError so
// that an error from a peer is reported instead of waited on.
void nccl_wait(void* comm, int device, double timeout, const char* what);

}  // namespace mmfuse::cuda
