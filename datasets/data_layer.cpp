#include "datasets/data_layer.h"

#ifdef MMFUSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

#include <utility>

#include "core/distributed.h"

namespace mmfuse::datasets {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

BatchShard batch_shard() {
  const dist::World& w = dist::world();
  return BatchShard{w.rank(), w.size()};
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  return splitmix64(splitmix64(splitmix64(seed) ^ a) ^ (b * 0xd1b54a32d192ed03ULL));
}

// ---- EpochOrder ------------------------------------------------------------------------------

EpochOrder::EpochOrder(int64_t count, uint64_t seed, bool shuffle) : count_(count), seed_(seed), shuffle_(shuffle) {}

std::vector<int64_t> EpochOrder::permutation(int64_t count, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) order[i] = i;
  Generator gen(mix_seed(seed ^ 0x3c6ef372fe94f82bULL, static_cast<uint64_t>(epoch)));
  for (int64_t i = count - 1; i > 0; --i) std::swap(order[i], order[gen.below(static_cast<uint64_t>(i + 1))]);
  return order;
}

int64_t EpochOrder::sample_at(int64_t position) const {
  MMF_CHECK(position >= 0, Error, "sample position ", position, " is negative");
  const int64_t epoch = position / count_, slot = position % count_;
  if (!shuffle_) return slot;
  std::shared_ptr<const std::vector<int64_t>> order;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(epoch);
    if (it != cache_.end()) order = it->second;
  }
  if (!order) {  // computed outside the lock; two threads may both compute it, identically
    order = std::make_shared<const std::vector<int64_t>>(permutation(count_, seed_, epoch));
    std::lock_guard<std::mutex> lock(mutex_);
    cache_[epoch] = order;
    while (cache_.size() > 3) cache_.erase(cache_.begin()->first == epoch ? std::next(cache_.begin()) : cache_.begin());
  }
  return (*order)[static_cast<size_t>(slot)];
}

// ---- BatchPrefetcher -------------------------------------------------------------------------

BatchPrefetcher::BatchPrefetcher(BatchMaker make, int threads, int prefetch)
    : make_(std::move(make)), prefetch_(prefetch < 1 ? 1 : prefetch) {
  for (int t = 0; t < threads; ++t) workers_.emplace_back([this] { worker(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void BatchPrefetcher::worker() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || (started_ && next_claim_ < next_get_ + prefetch_); });
    if (stop_) return;
    const int64_t b = next_claim_++;
    const uint64_t generation = generation_;
    slots_[b];
    lock.unlock();
    Slot done;
    try {
      done.batch = make_(b);
    } catch (...) {
      done.error = std::current_exception();
    }
    done.ready = true;
    lock.lock();
    if (generation != generation_) continue;  // a seek dropped this batch
    auto it = slots_.find(b);
    if (it == slots_.end()) continue;
    it->second = std::move(done);
    ready_cv_.notify_all();
  }
}

HostBatch BatchPrefetcher::get(int64_t b) {
  MMF_CHECK(b >= 0, Error, "batch index ", b, " is negative");
  if (workers_.empty()) return make_(b);
  std::unique_lock<std::mutex> lock(mutex_);
  if (!started_ || b != next_get_) {
    // A seek (or the first call): drop what was predicted, make b here, predict from b+1.
    ++generation_;
    slots_.clear();
    started_ = true;
    next_get_ = next_claim_ = b + 1;
    lock.unlock();
    work_cv_.notify_all();
    return make_(b);
  }
  std::map<int64_t, Slot>::iterator it;
  ready_cv_.wait(lock, [&] {
    it = slots_.find(b);
    return it != slots_.end() && it->second.ready;
  });
  Slot slot = std::move(it->second);
  slots_.erase(it);
  next_get_ = b + 1;
  lock.unlock();
  work_cv_.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  return std::move(slot.batch);
}

// ---- upload ----------------------------------------------------------------------------------

TensorList upload_batch(const HostBatch& batch, Device device, DType dtype) {
  TensorList tops;
  for (const HostBlob& blob : batch) {
    DType dt = blob.is_int ? DType::i32 : dtype;
#ifdef MMFUSE_WITH_CUDA
    if (device.is_cuda()) {
      // Staged through a pinned buffer: the copy is asynchronous on the compute stream, and the
      // buffer returns to the pinned cache once the stream has passed the copy.
      Tensor out = Tensor::empty(blob.shape, dt, device);
      void* staging = cuda::pinned_alloc(out.nbytes());
      if (blob.is_int)
        copy_elements(blob.ints.data(), DType::i32, Device::cpu(), staging, dt, Device::cpu(), out.numel());
      else
        copy_elements(blob.values.data(), DType::f32, Device::cpu(), staging, dt, Device::cpu(), out.numel());
      cuda::copy_to_device(out.raw_data(), staging, out.nbytes(), device.index);
      cuda::pinned_free(staging);
      tops.push_back(out);
      continue;
    }
#endif
    tops.push_back(blob.is_int ? Tensor::from_vector(blob.ints, blob.shape, dt, device)
                               : Tensor::from_vector(blob.values, blob.shape, dt, device));
  }
  return tops;
}

}  // namespace mmfuse::datasets
