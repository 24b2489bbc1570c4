// A seeded generator: (seed, offset) into the Philox stream. Each draw advances the offset by
// the number of words it used, so a run is reproducible from its seed and the generator's
// state (two integers) is all a snapshot needs to store.
#pragma once
#include <cstdint>

namespace mmfuse {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves `words` words of the stream; returns the offset of the first.
  uint64_t take(uint64_t words) {
    uint64_t o = offset_;
    offset_ += (words + 3) & ~uint64_t(3);  // keep each draw on a counter boundary
    return o;
  }
  // One uniform draw in [0, 1) for host-side decisions (shuffles, augmentation).
  double uniform();
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n);

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

}  // namespace mmfuse
