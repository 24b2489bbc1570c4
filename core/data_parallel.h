// The solver's side of data-parallel training (docs/distributed.md): what a rank does besides
// its own forward and backward. Every rank builds the same net from the same seed; rank 0's
// parameters are broadcast at the start of solve() (after --weights / --snapshot loads), rank
// 0's state parameters (BatchNorm running statistics) before every iteration (PyTorch DDP's
// broadcast_buffers), and after backward the gradients are averaged over the ranks in buckets
// of allreduce_bucket_mb, in a fixed order (the reverse of the parameter order, the order
// backward finishes them), so that every rank applies the same update to the same weights.
// CPU gradients go through MPI, CUDA gradients through NCCL on the compute stream.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/distributed.h"
#include "core/net.h"
#include "core/optimizer.h"
#include "core/random.h"

namespace mmfuse {

class DataParallel {
 public:
  DataParallel(dist::World& world, double bucket_mb);

  dist::World& world() const { return world_; }
  // Every parameter, learnable and state, from rank 0.
  void broadcast_parameters(const Net& net, const std::string& when);
  // Gives rank r > 0 a Dropout stream of its own, (seed mixed with r, the same offset): masks
  // independent across ranks, the generator's offset still advancing alike (rank 0 keeps the
  // seed, which is what its snapshots record).
  void own_dropout_stream(Generator& generator) const;
  // The state parameters only (BatchNorm statistics), from rank 0.
  void broadcast_state(const Net& net, int64_t iter);
  // Replaces each parameter's gradient by the average over the ranks. A parameter without a
  // gradient (undefined: not reached by backward, the same on every rank of the same net) takes
  // part as zeros and stays without one.
  void average_gradients(const std::vector<OptimParam>& params, int64_t iter);

  // One exchange per iteration: the loss and the displayed outputs averaged over the ranks,
  // and the signals seen by any rank (a Ctrl-C that reached one rank stops them all, at the
  // same iteration).
  struct Agreed {
    double loss = 0;
    std::vector<double> outputs;
    bool stop = false, snapshot = false;
  };
  Agreed agree(double loss, const std::vector<double>& outputs, bool stop, bool snapshot, int64_t iter);
  // True when `flag` is true on any rank.
  bool any(bool flag, const std::string& what);

  // The buckets of the last average_gradients: the parameter indices of each, in order.
  const std::vector<std::vector<size_t>>& buckets() const { return buckets_; }

 private:
  void plan_buckets(const std::vector<OptimParam>& params);

  dist::World& world_;
  size_t bucket_bytes_;
  std::vector<std::vector<size_t>> buckets_;
};

}  // namespace mmfuse
