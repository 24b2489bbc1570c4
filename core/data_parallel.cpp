#include "core/data_parallel.h"

#include <algorithm>
#include <climits>
#include <map>
#include <utility>

#include "core/autograd.h"
#include "core/ops.h"
#include "cuda/nccl.h"

namespace mmfuse {

DataParallel::DataParallel(dist::World& world, double bucket_mb, bool overlap) : world_(world), overlap_(overlap) {
  MMF_CHECK(bucket_mb > 0, Error, "allreduce_bucket_mb must be > 0, got ", bucket_mb);
  bucket_bytes_ = static_cast<size_t>(bucket_mb * 1024 * 1024);
}

namespace {

// Rank 0's values of `t` on every rank: MPI for host tensors, NCCL for CUDA ones.
void broadcast_tensor(dist::World& world, const Tensor& t, const std::string& what) {
  const size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
  MMF_CHECK(bytes <= static_cast<size_t>(INT_MAX), Error, what, ": ", bytes, " bytes in one message; MPI counts are int");
  if (!t.is_cuda()) return world.broadcast(t.raw_data(), bytes, what);
#ifdef MMFUSE_WITH_NCCL
  const int device = t.device().index;
  void* comm = world.nccl_comm(device);
  cuda::nccl_broadcast(t.raw_data(), bytes, comm, device);
  try {
    cuda::nccl_wait(comm, device, world.timeout(), what.c_str());
  } catch (const DeviceError& e) {
    world.abort(e.what());
  }
#else
  world.abort(what + ": " + t.device().str() + " tensors need NCCL, and this build of mmfuse has none");
#endif
}

}  // namespace

void DataParallel::broadcast_parameters(const Net& net, const std::string& when) {
  if (!world_.distributed()) return;
  for (const Param& p : net.params()) broadcast_tensor(world_, p.value, "broadcast of " + p.name + " " + when);
}

void DataParallel::own_dropout_stream(Generator& generator) const {
  if (world_.rank() == 0) return;
  // splitmix64 of (seed, rank): a stream of its own for each rank.
  uint64_t z = generator.seed() ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(world_.rank()));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  generator.set_state(z ^ (z >> 31), generator.offset());
}

void DataParallel::broadcast_state(const Net& net, int64_t iter) {
  if (!world_.distributed()) return;
  // One message per (device, dtype): the state tensors packed, sent, unpacked (a ResNet-101
  // has some 300 of them; one collective each would cost a latency, and on a GPU a wait, each).
  autograd::NoGradGuard no_grad;
  std::map<std::pair<std::string, DType>, std::vector<Tensor>> groups;
  for (const Param& p : net.params())
    if (!p.learnable) groups[{p.value.device().str(), p.value.dtype()}].push_back(p.value);
  for (const auto& [key, tensors] : groups) {
    TensorList flat;
    for (const Tensor& t : tensors) flat.push_back(t.detach().reshape({t.numel()}));
    Tensor packed = flat.size() == 1 ? flat[0].clone() : concat(flat, 0);
    broadcast_tensor(world_, packed, "broadcast of the BatchNorm statistics at iteration " + std::to_string(iter));
    int64_t offset = 0;
    for (const Tensor& t : tensors) {
      t.copy_(packed.narrow(offset, t.numel()).reshape(t.shape()));
      offset += t.numel();
    }
  }
}

void DataParallel::plan_buckets(const std::vector<OptimParam>& params) {
  buckets_.clear();
  bucket_of_.assign(params.size(), 0);
  index_of_.clear();
  size_t bytes = 0;
  for (size_t k = params.size(); k-- > 0;) {
    const size_t b = static_cast<size_t>(params[k].value.numel()) * sizeof(float);
    if (buckets_.empty() || (bytes + b > bucket_bytes_ && bytes > 0)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    index_of_[params[k].value.unsafe_impl()] = k;
    bytes += b;
  }
}

void DataParallel::prepare(const std::vector<OptimParam>& params, int64_t iter) {
  if (buckets_.empty()) plan_buckets(params);
  MMF_CHECK(bucket_of_.size() == params.size(), Error, "gradient all-reduce at iteration ", iter, ": ", params.size(),
            " parameters, but the buckets were planned for ", bucket_of_.size());
  params_ = params;
  what_ = "gradient all-reduce at iteration " + std::to_string(iter);
  flat_.assign(buckets_.size(), Tensor());
  pending_.assign(buckets_.size(), 0);
  final_.assign(params.size(), 0);
  for (size_t k = 0; k < params.size(); ++k) {
    // A parameter that needs no gradient gets none from backward: final already.
    if (params[k].value.requires_grad())
      ++pending_[bucket_of_[k]];
    else
      final_[k] = 1;
  }
  launched_ = 0;
  started_during_backward_ = 0;
  cuda_device_ = -1;
}

void DataParallel::launch_next() {
  const size_t b = launched_++;
  TensorList parts;
  for (size_t k : buckets_[b]) {
    const Tensor& value = params_[k].value;
    Tensor g = value.grad();
    if (!g.defined()) g = Tensor::zeros(value.shape(), value.dtype(), value.device());
    MMF_CHECK(g.dtype() == DType::f32, Error, "data-parallel training reduces float32 gradients; ", params_[k].name,
              " has a ", dtype_name(g.dtype()), " gradient");
    parts.push_back(g.detach().reshape({g.numel()}));
  }
  flat_[b] = parts.size() == 1 ? parts[0].clone() : concat(parts, 0);
  if (!flat_[b].is_cuda()) return world_.start_allreduce_sum(flat_[b].data<float>(), static_cast<size_t>(flat_[b].numel()));
#ifdef MMFUSE_WITH_NCCL
  cuda_device_ = flat_[b].device().index;
  cuda::nccl_allreduce_sum(flat_[b].data<float>(), static_cast<size_t>(flat_[b].numel()), world_.nccl_comm(cuda_device_),
                           cuda_device_);
#else
  world_.abort(what_ + ": " + flat_[b].device().str() + " gradients need NCCL, and this build of mmfuse has none");
#endif
}

void DataParallel::gradient_final(const TensorImpl& leaf) {
  auto it = index_of_.find(&leaf);
  if (it == index_of_.end()) return;  // not a parameter the solver updates
  const size_t k = it->second, b = bucket_of_[k];
  // The engine runs a leaf's accumulator once per backward; a second report would mean the
  // gradient changed after its bucket may have started.
  MMF_CHECK(!final_[k], Error, what_, ": the gradient of ", params_[k].name,
            " was reported final twice in one backward (backward called twice between start_backward and "
            "average_gradients?)");
  final_[k] = 1;
  --pending_[b];
  while (launched_ < buckets_.size() && pending_[launched_] == 0) {
    launch_next();
    ++started_during_backward_;
  }
  world_.progress();  // MPI moves the started buckets along only inside its calls
}

void DataParallel::start_backward(const std::vector<OptimParam>& params, int64_t iter) {
  if (!overlap_ || !world_.distributed() || params.empty()) return;
  unhook();
  prepare(params, iter);
  previous_hook_ = autograd::set_leaf_grad_hook([this](const TensorImpl& leaf) { gradient_final(leaf); });
  hooked_ = true;
}

void DataParallel::unhook() {
  if (!hooked_) return;
  autograd::set_leaf_grad_hook(std::move(previous_hook_));
  previous_hook_ = nullptr;
  hooked_ = false;
}

DataParallel::~DataParallel() { unhook(); }

void DataParallel::average_gradients(const std::vector<OptimParam>& params, int64_t iter) {
  if (!world_.distributed() || params.empty()) return;
  autograd::NoGradGuard no_grad;
  if (hooked_) {
    unhook();
    MMF_CHECK(params.size() == params_.size(), Error, what_, ": start_backward had ", params_.size(),
              " parameters, average_gradients ", params.size());
  } else {
    prepare(params, iter);
  }
  // What backward did not reach (or all of it, without overlap), in the same order.
  while (launched_ < buckets_.size()) launch_next();
  world_.wait_allreduces(what_);
#ifdef MMFUSE_WITH_NCCL
  if (cuda_device_ >= 0) {
    try {
      cuda::nccl_wait(world_.nccl_comm(cuda_device_), cuda_device_, world_.timeout(), what_.c_str());
    } catch (const DeviceError& e) {
      world_.abort(e.what());
    }
  }
#endif
  const double scale = 1.0 / world_.size();
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Tensor mean = flat_[b] * scale;
    int64_t offset = 0;
    for (size_t k : buckets_[b]) {
      const Tensor& value = params_[k].value;
      const int64_t n = value.numel();
      if (value.grad().defined()) value.set_grad(mean.narrow(offset, n).reshape(value.shape()));
      offset += n;
    }
  }
  flat_.assign(flat_.size(), Tensor());  // releases the packed gradients
  params_.clear();
}

DataParallel::Agreed DataParallel::agree(double loss, const std::vector<double>& outputs, bool stop, bool snapshot,
                                         int64_t iter) {
  Agreed a{loss, outputs, stop, snapshot};
  if (!world_.distributed()) return a;
  std::vector<double> v{loss};
  v.insert(v.end(), outputs.begin(), outputs.end());
  v.push_back(stop ? 1 : 0);
  v.push_back(snapshot ? 1 : 0);
  v = world_.agree_sum(std::move(v), "the exchange of losses and signals at iteration " + std::to_string(iter));
  const double ranks = world_.size();
  a.loss = v[0] / ranks;
  for (size_t i = 0; i < outputs.size(); ++i) a.outputs[i] = v[1 + i] / ranks;
  a.stop = v[v.size() - 2] > 0;
  a.snapshot = v[v.size() - 1] > 0;
  return a;
}

bool DataParallel::any(bool flag, const std::string& what) {
  if (!world_.distributed()) return flag;
  return world_.agree_sum({flag ? 1.0 : 0.0}, what)[0] > 0;
}

}  // namespace mmfuse
