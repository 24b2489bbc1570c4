#include "core/random.h"

#include "base/philox.h"

namespace mmfuse {

double Generator::uniform() { return philox::uniform(philox::word(seed_, take(1), 0)); }

uint64_t Generator::below(uint64_t n) {
  if (n <= 1) return 0;
  uint64_t o = take(2);
  uint64_t w = (static_cast<uint64_t>(philox::word(seed_, o, 0)) << 32) | philox::word(seed_, o, 1);
  return w % n;  // bias below 2^-32 for the sizes we draw
}

}  // namespace mmfuse
