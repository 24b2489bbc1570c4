// The solver's side of data-parallel training (docs/distributed.md): what a rank does besides
// its own forward and backward. Every rank builds the same net from the same seed; rank 0's
// parameters are broadcast at the start of solve() (after --weights / --snapshot loads), rank
// 0's state parameters (BatchNorm running statistics) before every iteration (PyTorch DDP's
// broadcast_buffers), and the gradients are averaged over the ranks in buckets of
// allreduce_bucket_mb, in a fixed order (the reverse of the parameter order, the order
// backward finishes them), so that every rank applies the same update to the same weights.
// With overlap (allreduce_overlap, the default) a bucket's all-reduce starts during backward,
// as soon as the autograd engine reports the gradients of all its parameters final and every
// earlier bucket has started; the buckets, their order and the reductions are those of the
// post-backward path, so the results are the same to the bit. CPU gradients go through MPI
// (MPI_Iallreduce), CUDA gradients through NCCL on the compute stream.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/autograd.h"
#include "core/distributed.h"
#include "core/net.h"
#include "core/optimizer.h"
#include "core/random.h"

namespace mmfuse {

class DataParallel {
 public:
  DataParallel(dist::World& world, double bucket_mb, bool overlap = true);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  dist::World& world() const { return world_; }
  // Every parameter, learnable and state, from rank 0.
  void broadcast_parameters(const Net& net, const std::string& when);
  // Gives rank r > 0 a Dropout stream of its own, (seed mixed with r, the same offset): masks
  // independent across ranks, the generator's offset still advancing alike (rank 0 keeps the
  // seed, which is what its snapshots record).
  void own_dropout_stream(Generator& generator) const;
  // The state parameters only (BatchNorm statistics), from rank 0.
  void broadcast_state(const Net& net, int64_t iter);
  // With overlap on, call it right before the backward() whose gradients average_gradients
  // reduces next (the last sub-batch's under iter_size: the earlier ones only accumulate): it
  // hooks the autograd engine, and as that backward makes the gradients of the next bucket
  // final, the bucket's all-reduce starts (bucket k only after buckets 0..k-1). A no-op
  // without overlap or with one rank.
  void start_backward(const std::vector<OptimParam>& params, int64_t iter);
  // Replaces each parameter's gradient by the average over the ranks: starts the buckets not
  // started yet (all of them without start_backward), waits for every bucket (timeout and
  // silent ranks as for any collective) and divides by the world size. A parameter without a
  // gradient (undefined: not reached by backward, the same on every rank of the same net) takes
  // part as zeros and stays without one.
  void average_gradients(const std::vector<OptimParam>& params, int64_t iter);
  bool overlap() const { return overlap_; }
  // How many buckets of the last average_gradients started while backward was running.
  size_t started_during_backward() const { return started_during_backward_; }

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
  // Readies the buckets of one reduction: none started, every gradient pending.
  void prepare(const std::vector<OptimParam>& params, int64_t iter);
  // Starts bucket `launched_` (its gradients packed into flat_, then MPI or NCCL).
  void launch_next();
  // The engine's report that `leaf`'s gradient is final: starts the buckets it completes.
  void gradient_final(const TensorImpl& leaf);
  void unhook();

  dist::World& world_;
  size_t bucket_bytes_;
  bool overlap_;
  std::vector<std::vector<size_t>> buckets_;
  std::vector<size_t> bucket_of_;                          // parameter index -> its bucket
  std::unordered_map<const TensorImpl*, size_t> index_of_;  // parameter tensor -> its index

  // The reduction under way (prepare() to average_gradients()).
  std::vector<OptimParam> params_;
  std::string what_;
  std::vector<Tensor> flat_;        // each bucket's gradients, packed, reduced in place
  std::vector<size_t> pending_;     // per bucket: how many of its gradients are not final yet
  std::vector<char> final_;         // per parameter: its gradient is final
  size_t launched_ = 0;             // buckets 0..launched_-1 have started
  size_t started_during_backward_ = 0;
  int cuda_device_ = -1;            // the device of the CUDA buckets (NCCL builds)
  bool hooked_ = false;
  autograd::LeafGradHook previous_hook_;
};

}  // namespace mmfuse
