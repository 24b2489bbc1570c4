// NCCL with one rank on cuda:0 (docs/distributed.md; issue 16 asks the NCCL path to run with
// one rank wherever a GPU is visible): the process's communicator, made by World::nccl_comm as
// a data-parallel job makes it (the id from rank 0, broadcast over MPI: nothing to send with
// one rank), then a broadcast and an all-reduce queued on the communication stream behind the
// kernels that wrote their buffer, and nccl_wait. With one rank both leave the values as they
// are, to the bit; a wrong stream order, a bad communicator or a failing wait shows here. More
// ranks need more GPUs (NCCL refuses two ranks on one device): `mpirun -np N mmfuse train
// --gpu 0,1,...` on a machine that has them. Skipped without a GPU, NCCL or MPI.
#include "core/distributed.h"
#include "cuda/nccl.h"
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

MMF_CUDA_TEST("NCCL: one rank on cuda:0, broadcast and all-reduce behind the compute stream") {
#ifndef MMFUSE_WITH_NCCL
  MESSAGE("this build has no NCCL: skipped");
#else
  if (!dist::built_with_mpi()) {
    MESSAGE("this build has no MPI, which starts NCCL's communicator: skipped");
    return;
  }
  dist::World& world = dist::world();
  REQUIRE(world.size() == 1);  // the test binary is no rank of a job
  void* comm = world.nccl_comm(0);
  REQUIRE(comm != nullptr);
  CHECK(world.nccl_comm(0) == comm);           // one communicator per process, kept
  CHECK_THROWS_AS(world.nccl_comm(1), Error);  // and one GPU per rank

  Generator gen(5);
  const int64_t n = int64_t{3} << 20;  // 12 MB: NCCL's large-message path
  Tensor host = Tensor::randn({n}, gen);
  Tensor want = host * 2.0;
  for (bool all_reduce : {true, false}) {
    CAPTURE(all_reduce);
    // Written by a kernel on the compute stream just before the collective is queued.
    Tensor data = host.to(Device::cuda(0)) * 2.0;
    if (all_reduce)
      cuda::nccl_allreduce_sum(data.data<float>(), static_cast<size_t>(n), comm, 0);
    else
      cuda::nccl_broadcast(data.raw_data(), static_cast<size_t>(n) * sizeof(float), comm, 0);
    cuda::nccl_wait(comm, 0, 60, all_reduce ? "test all-reduce" : "test broadcast");
    CHECK(data.to(Device::cpu()).to_vector<float>() == want.to_vector<float>());
  }
#endif
}
