// Shared machinery of the data layers: the determinism contract (epoch orders and per-sample
// generators derived from the seed), host batches, the prefetching worker pool with its bounded
// queue, and the upload of a host batch to the layer's device.
//
// The contract: batch b of a data layer is a pure function of (seed, b, phase). Epoch e's order
// is a permutation drawn from (seed, e); sample j of batch b augments with a generator seeded by
// (seed, b, j). So any number of prefetch threads gives the same batches, and resuming at batch
// k needs no saved loader state. See docs/datasets.md ("Data layers"). Under data-parallel
// training each rank makes its shard of every global batch (BatchShard, docs/distributed.md).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/autograd.h"
#include "core/random.h"
#include "core/tensor.h"

namespace mmfuse::datasets {

// splitmix64-based mixing of a seed with up to two integers (a different stream for each tuple).
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0);
// The generator of sample j of batch b (augmentation draws).
inline Generator sample_generator(uint64_t seed, int64_t batch, int64_t j) {
  return Generator(mix_seed(seed ^ 0xa0c1d2e3f4051627ULL, static_cast<uint64_t>(batch), static_cast<uint64_t>(j)));
}

// Which sample sits at each position of the endless sequence of batches: position p = b*N + j
// lies in epoch p / n at slot p % n; the slot maps to a sample through the epoch's permutation
// (Fisher-Yates with Generator(mix_seed(seed, epoch)), shuffle) or to itself (no shuffle).
// Thread-safe; remembers the last few epochs' permutations.
class EpochOrder {
 public:
  EpochOrder(int64_t count, uint64_t seed, bool shuffle);
  int64_t count() const { return count_; }
  int64_t sample_at(int64_t position) const;
  // The permutation of `epoch` (identity without shuffle).
  static std::vector<int64_t> permutation(int64_t count, uint64_t seed, int64_t epoch);

 private:
  int64_t count_;
  uint64_t seed_;
  bool shuffle_;
  mutable std::mutex mutex_;
  mutable std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> cache_;
};

// This process's share of each global batch under data-parallel training: with R ranks of
// batch B, global batch b holds R*B samples and rank r takes its samples [r*B, (r+1)*B),
// augmentation included (the per-sample generator's j is the global one), so that R ranks of
// batch B see exactly the samples one process of batch R*B sees. One process: rank 0 of 1.
struct BatchShard {
  int64_t rank = 0, ranks = 1;
  // The position in the endless sample sequence of sample j of this rank's batch b (of B).
  int64_t position(int64_t b, int64_t batch, int64_t j) const { return (b * ranks + rank) * batch + j; }
  // Sample j's index within the global batch: the j of sample_generator(seed, b, j).
  int64_t global_index(int64_t batch, int64_t j) const { return rank * batch + j; }
};
// The shard of this process (core/distributed.h's world()).
BatchShard batch_shard();

// A batch on the host: one float or int32 buffer per top.
struct HostBlob {
  Shape shape;
  bool is_int = false;
  std::vector<float> values;   // float tops
  std::vector<int32_t> ints;   // int32 tops (labels)
};
using HostBatch = std::vector<HostBlob>;
// Makes batch b. Must be a pure function of b (and thread-safe: workers call it concurrently).
using BatchMaker = std::function<HostBatch(int64_t batch)>;

// `threads` workers make batches b+1, b+2, ... ahead of the last one asked for, keeping at most
// `prefetch` of them ready or in the making. get(b) returns batch b: from the queue when it was
// predicted, else (a seek: resume, a test run restarting at 0) it drops the queue, makes b in the
// calling thread and restarts the prediction at b+1. A worker's exception is rethrown by the
// get() that asks for its batch. threads = 0: every batch is made in get(). The destructor stops
// and joins the workers (an in-flight batch is finished and discarded).
class BatchPrefetcher {
 public:
  BatchPrefetcher(BatchMaker make, int threads, int prefetch);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  HostBatch get(int64_t batch);

 private:
  struct Slot {
    bool ready = false;
    HostBatch batch;
    std::exception_ptr error;
  };
  void worker();

  BatchMaker make_;
  int prefetch_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_cv_, ready_cv_;
  bool stop_ = false;
  bool started_ = false;   // no prediction before the first get()
  uint64_t generation_ = 0;  // bumped on a seek: results of older generations are dropped
  int64_t next_get_ = 0;     // the batch the next get() is expected to ask for
  int64_t next_claim_ = 0;   // the next batch a worker will make
  std::map<int64_t, Slot> slots_;  // batches in [next_get_, next_claim_) being made or ready
};

// The tensors of a host batch on `device` (float tops in `dtype`, labels int32). On CUDA each
// top is staged through a cached pinned host buffer and copied asynchronously on the compute
// stream (compiled; not yet run on a GPU).
TensorList upload_batch(const HostBatch& batch, Device device, DType dtype);

}  // namespace mmfuse::datasets
