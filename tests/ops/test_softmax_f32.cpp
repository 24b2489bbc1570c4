// The float32 path of the softmax family (core/cpu/fast_math.h's vectorisable exp and log, the
// two layouts of core/cpu/loss.h): exp_approx / log_approx against libm in double over their
// whole range and at the special values; softmax, log_softmax and cross_entropy in float32,
// forward and backward, against the float64 kernels (libm's exp), in both layouts and across
// the block boundary; the same bits for 1, 2 and 3 threads, and with AVX2 or without; the same
// bits as a saved reference.
#include <cmath>
#include <cstring>
#include <bit>
#include <limits>
#include <vector>

#include "base/philox.h"
#include "core/cpu/fast_math.h"
#include "core/cpu/loss.h"
#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::check_close;
using mmfuse::testing::check_same_bits_for_thread_counts;

namespace {

// |got - want| in units of the float spacing at want (want finite and normal).
double ulps(float got, double want) {
  double spacing = std::ldexp(1.0, std::ilogb(static_cast<float>(want)) - 23);
  return std::abs(static_cast<double>(got) - want) / spacing;
}


// FNV-1a over the bytes of every float32 output of the CPU softmax-family kernels, on inputs
// drawn from philox (the same on every machine): both layouts, across the 64-position block and
// the 8 sum lanes, with +-inf, NaN and a large value in some lines, ignored targets, one
// gradient per position or one for all. Every NaN is hashed as the same value (its sign and
// payload depend on the order of a commutative operation's operands, the compiler's choice).
uint64_t softmax_family_f32_hash() {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&]<typename V>(const std::vector<V>& values) {
    for (V v : values) {
      v = std::isnan(v) ? std::numeric_limits<V>::quiet_NaN() : v;
      unsigned char bytes[sizeof(V)];
      std::memcpy(bytes, &v, sizeof(V));
      for (unsigned char b : bytes) h = (h ^ b) * 1099511628211ull;
    }
  };
  uint64_t counter = 0;
  auto draw = [&](double lo, double hi) {
    return static_cast<float>(lo + (hi - lo) * philox::uniform(philox::word(2026, 0, counter++)));
  };
  const float inf = std::numeric_limits<float>::infinity();
  for (cpu::LineGeometry g : {cpu::LineGeometry{5, 10, 1}, cpu::LineGeometry{37, 13, 1}, cpu::LineGeometry{2, 1000, 1},
                              cpu::LineGeometry{3, 7, 70}, cpu::LineGeometry{4, 19, 129}, cpu::LineGeometry{3, 1, 5}})
    for (double range : {1.0, 30.0}) {
      const int64_t n = g.outer * g.dim * g.inner, positions = g.outer * g.inner;
      std::vector<float> x(n), dy(n), y(n), dx(n), dloss(positions);
      for (float& v : x) v = draw(-range, range);
      for (float& v : dy) v = draw(-1, 1);
      for (float& v : dloss) v = draw(-1, 1);
      if (range > 1 && n > 40) x[3] = inf, x[17] = -inf, x[n - 1] = std::numeric_limits<float>::quiet_NaN(), x[n / 2] = 1e30f;
      std::vector<int32_t> target(positions);
      for (int64_t p = 0; p < positions; ++p) target[p] = p % 5 == 3 ? -100 : static_cast<int32_t>((p * 31) % g.dim);
      for (bool log : {false, true}) {
        cpu::softmax_forward(x.data(), y.data(), g, log);
        cpu::softmax_backward(y.data(), dy.data(), dx.data(), g, log);
        mix(y);
        mix(dx);
      }
      std::vector<double> lse(positions), loss(positions);
      cpu::cross_entropy_forward(x.data(), target.data(), g, -100, lse.data(), loss.data());
      mix(lse);
      mix(loss);
      for (bool per_position : {true, false}) {
        cpu::cross_entropy_backward(x.data(), target.data(), lse.data(), g, -100, dloss.data(), per_position, 0.37, dx.data());
        mix(dx);
      }
    }
  return h;
}

}  // namespace

TEST_CASE("exp_approx is within 2 ulp of exp over the float range, and exact at the specials") {
  double worst = 0, worst_at = 0;
  const float lo = -87.33654f, hi = 88.72283f;
  auto check = [&](float x) {
    if (x < lo || x > hi) return;
    double u = ulps(cpu::exp_approx(x), std::exp(static_cast<double>(x)));
    if (u > worst) worst = u, worst_at = x;
  };
  // A uniform grid over the arguments of normal, finite results, and +-2^k (1 + j/1024) down to
  // 2^-30 (where exp is near 1).
  for (int i = 0; i <= 1 << 20; ++i) check(lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(1 << 20));
  for (int k = -30; k <= 6; ++k)
    for (int j = 0; j < 1024; ++j)
      for (float sign : {-1.0f, 1.0f}) check(sign * std::ldexp(1.0f + static_cast<float>(j) / 1024.0f, k));
  INFO("worst ", worst, " ulp at x = ", worst_at);
  CHECK(worst <= 2.0);
  CHECK(cpu::exp_approx(0.0f) == 1.0f);
  CHECK(cpu::exp_approx(-100.0f) == 0.0f);  // below the smallest normal result: flushed to 0
  CHECK(cpu::exp_approx(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(cpu::exp_approx(89.0f) == std::numeric_limits<float>::infinity());
  CHECK(cpu::exp_approx(std::numeric_limits<float>::infinity()) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(cpu::exp_approx(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isfinite(cpu::exp_approx(88.72283f)));
}

TEST_CASE("log_approx is within 2 ulp of log for every positive float, and exact at the specials") {
  double worst = 0, worst_at = 0;
  // Every 4099th positive float, subnormals included, and the neighbourhood of 1.
  auto check = [&](float x) {
    double want = std::log(static_cast<double>(x));
    if (want == 0) {
      CHECK(cpu::log_approx(x) == 0.0f);
      return;
    }
    double u = ulps(cpu::log_approx(x), want);
    if (u > worst) worst = u, worst_at = x;
  };
  for (uint32_t bits = 1; bits < 0x7f800000u; bits += 4099) check(std::bit_cast<float>(bits));
  for (float x = 0.99f; x < 1.01f; x = std::nextafter(x, 2.0f)) check(x);
  INFO("worst ", worst, " ulp at x = ", worst_at);
  CHECK(worst <= 2.0);
  CHECK(cpu::log_approx(1.0f) == 0.0f);
  CHECK(cpu::log_approx(0.0f) == -std::numeric_limits<float>::infinity());
  CHECK(cpu::log_approx(std::numeric_limits<float>::infinity()) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(cpu::log_approx(-1.0f)));
  CHECK(std::isnan(cpu::log_approx(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("float32 softmax, log_softmax and cross_entropy match float64, forward and backward, in both layouts") {
  Generator gen(7);
  // [N, K] (one contiguous line per sample), [N, K, S] with S across a block boundary (70 > 64),
  // and many classes (the double sums keep the error independent of K).
  for (Shape shape : {Shape{5, 10}, Shape{3, 7, 70}, Shape{2, 1000}, Shape{2, 300, 3}}) {
    CAPTURE(shape_str(shape));
    Tensor x64 = Tensor::rand(shape, gen, -8, 8, DType::f64);
    Tensor x32 = x64.to(DType::f32);
    x64 = x32.to(DType::f64);  // the same values in both
    Tensor gy64 = Tensor::rand(shape, gen, -1, 1, DType::f64), gy32 = gy64.to(DType::f32);
    gy64 = gy32.to(DType::f64);
    for (bool log : {false, true}) {
      CAPTURE(log);
      auto run = [&](const Tensor& x, const Tensor& gy) {
        Tensor leaf = x.detach().set_requires_grad();
        Tensor y = log ? log_softmax(leaf, 1) : softmax(leaf, 1);
        y.backward(gy);
        return TensorList{y, leaf.grad()};
      };
      TensorList want = run(x64, gy64), got = run(x32, gy32);
      check_close(got[0], want[0], log ? 2e-6 : 1e-6);
      check_close(got[1], want[1], 2e-6);
    }
    // Targets: every class, and ignore_index at every 5th position.
    Shape target_shape = shape;
    target_shape.erase(target_shape.begin() + 1);
    Tensor target = Tensor::empty(target_shape, DType::i32);
    for (int64_t p = 0; p < target.numel(); ++p)
      target.data<int32_t>()[p] = p % 5 == 3 ? -100 : static_cast<int32_t>((p * 31) % shape[1]);
    for (Reduction reduction : {Reduction::none, Reduction::mean}) {
      auto run = [&](const Tensor& x) {
        Tensor leaf = x.detach().set_requires_grad();
        Tensor loss = cross_entropy(leaf, target, -100, reduction);
        (reduction == Reduction::none ? sum(loss) : loss).backward();
        return TensorList{loss, leaf.grad()};
      };
      TensorList want = run(x64), got = run(x32);
      check_close(got[0], want[0], 2e-6);
      check_close(got[1], want[1], 2e-6);
    }
  }
}

TEST_CASE("float32 softmax and cross_entropy give the same bits for 1, 2 and 3 threads") {
  Generator gen(8);
  for (Shape shape : {Shape{256, 100}, Shape{4, 7, 4096}}) {
    Tensor x = Tensor::rand(shape, gen, -8, 8, DType::f32);
    Shape target_shape = shape;
    target_shape.erase(target_shape.begin() + 1);
    Tensor target = Tensor::empty(target_shape, DType::i32);
    for (int64_t p = 0; p < target.numel(); ++p) target.data<int32_t>()[p] = static_cast<int32_t>((p * 13) % shape[1]);
    check_same_bits_for_thread_counts(
        [&] {
          Tensor leaf = x.detach().set_requires_grad();
          Tensor loss = cross_entropy(leaf, target, -100, Reduction::mean) + mean(log_softmax(leaf, 1));
          loss.backward();
          return TensorList{loss, softmax(x, 1), leaf.grad()};
        },
        "loss, softmax, dlogits");
  }
}

TEST_CASE("float32 softmax and cross_entropy give the same bits with AVX2 and with the baseline code") {
  if (!cpu::cpu_has_avx2()) {
    MESSAGE("this CPU has no AVX2: only the baseline code runs");
    return;
  }
  Generator gen(9);
  for (Shape shape : {Shape{37, 1000}, Shape{3, 7, 4099}, Shape{64, 10}}) {
    CAPTURE(shape_str(shape));
    Tensor x = Tensor::rand(shape, gen, -20, 20, DType::f32);
    Shape target_shape = shape;
    target_shape.erase(target_shape.begin() + 1);
    Tensor target = Tensor::empty(target_shape, DType::i32);
    for (int64_t p = 0; p < target.numel(); ++p)
      target.data<int32_t>()[p] = p % 7 == 2 ? -100 : static_cast<int32_t>((p * 17) % shape[1]);
    auto run = [&] {
      Tensor leaf = x.detach().set_requires_grad();
      Tensor loss = cross_entropy(leaf, target, -100, Reduction::none);
      Tensor y = log_softmax(leaf, 1), p = softmax(leaf, 1);
      (sum(loss) + sum(y * y) + sum(p * p)).backward();
      return TensorList{loss, y, p, leaf.grad()};
    };
    TensorList with_avx2 = run();
    cpu::simd_avx2_allowed() = false;
    TensorList baseline = run();
    cpu::simd_avx2_allowed() = true;
    for (size_t i = 0; i < with_avx2.size(); ++i) {
      CAPTURE(i);
      std::vector<float> a = with_avx2[i].to_vector<float>(), b = baseline[i].to_vector<float>();
      CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("float32 softmax, log_softmax and cross_entropy kernels give the saved reference bits") {
  // The hash of the kernels of e06596f, whose formulas were still written in core/cpu/loss.h (and
  // again in cuda/loss.cu) before they moved to SoftmaxRules (base/geometry/loss.h): the move
  // changed no bit. The same with gcc -O3 and clang -O1. A deliberate change to the float32
  // arithmetic (fast_math.h, the order of a sum) changes the hash: update it then, saying why.
  constexpr uint64_t kReference = 0xf4e165305256e1b1ull;
  CHECK(softmax_family_f32_hash() == kReference);
  if (cpu::cpu_has_avx2()) {
    cpu::simd_avx2_allowed() = false;
    CHECK(softmax_family_f32_hash() == kReference);
    cpu::simd_avx2_allowed() = true;
  }
}
