// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. Element i of a random tensor depends only on (seed, counter), so
// CPU and CUDA kernels produce identical streams and any thread can compute any element.
// Dependency-free on purpose: included by CPU code and by .cu files.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define MMF_HD __host__ __device__ __forceinline__
#else
#define MMF_HD inline
#endif

// Forced inline on the host too, for the formulas that CPU loops run inside simd_range's
// target("avx2") clone (core/cpu/fast_math.h): a helper left out of line there would be
// baseline, unvectorised code.
#if defined(__CUDACC__)
#define MMF_HD_INLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define MMF_HD_INLINE __attribute__((always_inline)) inline
#else
#define MMF_HD_INLINE inline
#endif

namespace mmfuse::philox {

struct U32x4 { uint32_t v[4]; };

MMF_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// 4 random 32-bit words for counter `ctr` under key `seed`.
MMF_HD U32x4 random4(uint64_t seed, uint64_t ctr) {
  uint32_t c0 = static_cast<uint32_t>(ctr), c1 = static_cast<uint32_t>(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return U32x4{{c0, c1, c2, c3}};
}

// Word `i` of the stream (4 words per counter).
MMF_HD uint32_t word(uint64_t seed, uint64_t offset, uint64_t i) {
  uint64_t n = offset + i;
  return random4(seed, n >> 2).v[n & 3];
}

// Uniform in [0, 1) with 24 random bits (exact in float and double).
MMF_HD double uniform(uint32_t w) { return (w >> 8) * (1.0 / 16777216.0); }

}  // namespace mmfuse::philox
