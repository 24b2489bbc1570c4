#include "cuda/nccl.h"

#ifdef MMFUSE_WITH_NCCL
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "cuda/check.h"
#include "cuda/context.h"

#define MMF_NCCL_CHECK(call)                                                                         \
  do {                                                                                               \
    ncclResult_t mmf_nccl_ = (call);                                                                 \
    if (mmf_nccl_ != ncclSuccess)                                                                    \
      throw ::mmfuse::DeviceError(std::string(#call) + " failed at " + __FILE__ + ":" +              \
                                  std::to_string(__LINE__) + ": " + ncclGetErrorString(mmf_nccl_)); \
  } while (0)

namespace mmfuse::cuda {

static_assert(kNcclIdBytes == NCCL_UNIQUE_ID_BYTES, "kNcclIdBytes must match nccl.h");

std::vector<char> nccl_unique_id() {
  ncclUniqueId id;
  MMF_NCCL_CHECK(ncclGetUniqueId(&id));
  return std::vector<char>(id.internal, id.internal + NCCL_UNIQUE_ID_BYTES);
}

void* nccl_init(const std::vector<char>& id, int ranks, int rank, int device) {
  MMF_CHECK(id.size() == NCCL_UNIQUE_ID_BYTES, DeviceError, "NCCL id of ", id.size(), " bytes, expected ",
            NCCL_UNIQUE_ID_BYTES);
  ncclUniqueId uid;
  std::copy(id.begin(), id.end(), uid.internal);
  context(device);  // makes the device current
  ncclComm_t comm = nullptr;
  MMF_NCCL_CHECK(ncclCommInitRank(&comm, ranks, uid, rank));
  return comm;
}

void nccl_destroy(void* comm) {
  if (comm) ncclCommDestroy(static_cast<ncclComm_t>(comm));
}

namespace {

// The communication stream of `device`: NCCL's collectives run there, beside the compute
// stream, so that a bucket's all-reduce overlaps the backward kernels still queued on the
// compute stream. Created on first use, kept for the life of the process (as the compute
// stream is).
cudaStream_t comm_stream(int device) {
  static std::mutex mutex;
  static std::map<int, cudaStream_t> streams;
  std::lock_guard<std::mutex> lock(mutex);
  cudaStream_t& s = streams[device];
  if (!s) {
    context(device);  // makes the device current
    MMF_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  }
  return s;
}

// The communication stream of `device`, made to wait for everything queued so far on the
// compute stream (the kernels that wrote the buffer a collective reads), without blocking the
// host.
cudaStream_t comm_stream_after_compute(int device) {
  cudaStream_t compute = stream(device), comm = comm_stream(device);
  cudaEvent_t ready = nullptr;
  MMF_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  MMF_CUDA_CHECK(cudaEventRecord(ready, compute));
  MMF_CUDA_CHECK(cudaStreamWaitEvent(comm, ready, 0));
  MMF_CUDA_CHECK(cudaEventDestroy(ready));  // released once the wait has been satisfied
  return comm;
}

}  // namespace

void nccl_allreduce_sum(float* data, size_t n, void* comm, int device) {
  cudaStream_t s = comm_stream_after_compute(device);
  MMF_NCCL_CHECK(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, static_cast<ncclComm_t>(comm), s));
}

void nccl_broadcast(void* data, size_t bytes, void* comm, int device) {
  cudaStream_t s = comm_stream_after_compute(device);
  MMF_NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclUint8, 0, static_cast<ncclComm_t>(comm), s));
}

void nccl_wait(void* comm, int device, double timeout, const char* what) {
  // Once the host has seen the communication stream drain, work queued on the compute stream
  // afterwards reads the reduced buffers in order: no event back is needed.
  cudaStream_t s = comm_stream(device);
  auto nc = static_cast<ncclComm_t>(comm);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    cudaError_t q = cudaStreamQuery(s);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) MMF_CUDA_CHECK(q);
    ncclResult_t async = ncclSuccess;
    MMF_NCCL_CHECK(ncclCommGetAsyncError(nc, &async));
    if (async != ncclSuccess) {
      ncclCommAbort(nc);
      throw DeviceError(std::string(what) + ": NCCL reports " + ncclGetErrorString(async));
    }
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout) {
      ncclCommAbort(nc);
      throw DeviceError(std::string(what) + " did not complete within " + std::to_string(timeout) +
                        " s (collective_timeout): a rank died or stalled");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace mmfuse::cuda
#endif
