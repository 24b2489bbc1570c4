// exp and log for the CPU loops that the compiler should vectorise (the softmax family):
// branch-free float approximations, inlined, so that a loop calling them becomes SIMD code
// whatever the target (SSE2 at the baseline, wider with -march); glibc's expf/logf are scalar
// calls the loop cannot vectorise. Float: within 2 ulp of the correctly rounded result over
// the whole range (tests/ops/test_fast_math.cpp holds them against std::exp/std::log in
// double). Double: std::exp / std::log, so float64 (the gradient checks) keeps libm's accuracy.
//
// The float forms are the classic Cephes reductions: exp(x) = 2^n * exp(r) with n = round(x /
// ln 2) and |r| <= ln 2 / 2, r taken in two steps (ln 2 split into a short high part and a
// tail) so that n * ln2_hi is exact; log(x) = e * ln 2 + log(m) with x = m * 2^e and m in
// [sqrt(1/2), sqrt(2)); each a minimax polynomial on the reduced range. n and e move in and
// out of the exponent field by bit arithmetic on unsigned integers (no float-to-int cast, which
// would be undefined for NaN), and NaN propagates through the selects.
#pragma once
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>

namespace mmfuse::cpu {

// ---- AVX2 where the CPU has it --------------------------------------------------------------
// The project builds for plain x86-64 (SSE2). A loop that should use AVX2 on the CPUs that have
// it runs its range through simd_range(range, begin, end): range(begin, end) is compiled twice,
// inlined into a function with target("avx2") and into the baseline caller, and the CPU picks
// (__builtin_cpu_supports, once). Everything range calls must be MMF_SIMD_INLINE (forced
// inline), or it stays baseline code. Both versions run the same IEEE operations on every
// element (no FMA: target("avx2") does not enable it, and contraction is off), so they give
// the same bits, provided no sum is split by the vector width (cpu::lane_sum in loss.h).
#define MMF_SIMD_INLINE __attribute__((always_inline))

// Tests turn AVX2 off to compare the two versions bit for bit.
inline std::atomic<bool>& simd_avx2_allowed() {
  static std::atomic<bool> allowed{true};
  return allowed;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
template <typename F>
__attribute__((target("avx2"))) void simd_range_avx2(F& range, int64_t begin, int64_t end) {
  range(begin, end);
}
#else
inline bool cpu_has_avx2() { return false; }
#endif

template <typename F>
void simd_range(F& range, int64_t begin, int64_t end) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (cpu_has_avx2() && simd_avx2_allowed().load(std::memory_order_relaxed)) return simd_range_avx2(range, begin, end);
#endif
  range(begin, end);
}

// ---- exp and log --------------------------------------------------------------------------

MMF_SIMD_INLINE inline float exp_approx(float x) {
  constexpr float kMax = 88.72283935546875f;   // exp(kMax) is the largest finite float
  constexpr float kMin = -87.33654022216797f;  // exp(kMin) is the smallest normal float; below, 0
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds |v| < 2^22 to an integer
  float v = x > kMax ? kMax : x;
  v = v < kMin ? kMin : v;  // NaN stays NaN through both selects
  float shifted = v * kLog2e + kRound;
  float n = shifted - kRound;
  float r = v - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float e_r = p * (r * r) + r + 1.0f;
  // 2^n for n in [-126, 128], as 2^(n - n/2) * 2^(n/2): each factor's biased exponent stays
  // inside [1, 254], where 2^n alone would leave it at both ends.
  int32_t n_int = std::bit_cast<int32_t>(std::bit_cast<uint32_t>(shifted) - std::bit_cast<uint32_t>(kRound));
  int32_t half = n_int >> 1;
  float scale_a = std::bit_cast<float>(static_cast<uint32_t>(half + 127) << 23);
  float scale_b = std::bit_cast<float>(static_cast<uint32_t>(n_int - half + 127) << 23);
  float y = e_r * scale_a * scale_b;
  y = x > kMax ? INFINITY : y;
  return x < kMin ? 0.0f : y;
}

// For x > 0 (0 gives -inf, a negative x or NaN gives NaN, +inf gives +inf).
MMF_SIMD_INLINE inline float log_approx(float x) {
  constexpr float kSqrtHalf = 0.707106781186547524f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  // Subnormals: scale by 2^23 first, so that the exponent field holds the whole exponent.
  bool tiny = x < 1.17549435e-38f;
  float v = tiny ? x * 8388608.0f : x;
  uint32_t bits = std::bit_cast<uint32_t>(v);
  // m in [0.5, 1) and v = m * 2^e.
  float m = std::bit_cast<float>((bits & 0x007fffffu) | 0x3f000000u);
  float e = static_cast<float>(static_cast<int32_t>((bits >> 23) & 0xffu) - 126) - (tiny ? 23.0f : 0.0f);
  // m in [sqrt(1/2), sqrt(2)).
  bool low = m < kSqrtHalf;
  e = low ? e - 1.0f : e;
  float z = low ? m + m - 1.0f : m - 1.0f;
  float zz = z * z;
  float p = 7.0376836292e-2f;
  p = p * z - 1.1514610310e-1f;
  p = p * z + 1.1676998740e-1f;
  p = p * z - 1.2420140846e-1f;
  p = p * z + 1.4249322787e-1f;
  p = p * z - 1.6668057665e-1f;
  p = p * z + 2.0000714765e-1f;
  p = p * z - 2.4999993993e-1f;
  p = p * z + 3.3333331174e-1f;
  float y = p * z * zz + e * kLn2Lo - 0.5f * zz;
  y = z + y + e * kLn2Hi;
  y = x == INFINITY ? x : y;
  y = x == 0.0f ? -INFINITY : y;
  return x < 0.0f || x != x ? NAN : y;
}

template <typename T>
MMF_SIMD_INLINE inline T exp_of(T x) {
  if constexpr (sizeof(T) == sizeof(float)) return exp_approx(x);
  else return std::exp(x);
}

template <typename T>
MMF_SIMD_INLINE inline T log_of(T x) {
  if constexpr (sizeof(T) == sizeof(float)) return log_approx(x);
  else return std::log(x);
}

// The CPU's exp and log for the softmax family's shared formulas (SoftmaxRules in
// base/geometry/loss.h, with the working type T): exp_of, and the log of a line's double sum
// taken in T (float: log_approx of the sum rounded to float, so a float line's log-sum-exp
// carries one float rounding).
template <typename T>
struct FastMath {
  template <typename V>
  MMF_SIMD_INLINE static V exp(V x) {
    return exp_of<V>(x);
  }
  MMF_SIMD_INLINE static double log_sum(double sum) { return static_cast<double>(log_of<T>(static_cast<T>(sum))); }
};

}  // namespace mmfuse::cpu
