// Normalisation and dropout: batch_norm by hand, modality-stacked batch_norm against a naive
// loop and against separate per-modality calls, running statistics, dropout masks, gradients.
#include <cmath>

#include "base/philox.h"
#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::check_close;
using mmfuse::testing::random_input;

namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

Tensor f64(const std::vector<double>& v, const Shape& shape) { return Tensor::from_vector<double>(v, shape); }

// A plain copy with no autograd history (for per-modality halves of a tensor).
Tensor copy_of(const Tensor& t) {
  autograd::NoGradGuard no_grad;
  return t.detach().clone();
}

}  // namespace

TEST_CASE("batch_norm by hand: training normalises with the biased batch variance") {
  // x [3, 2]: channel 0 holds 1, 2, 3 (mean 2, biased var 2/3, unbiased 1);
  //           channel 1 holds 2, 4, 6 (mean 4, biased var 8/3, unbiased 4).
  Tensor x = f64({1, 2, 2, 4, 3, 6}, {3, 2});
  Tensor weight = f64({2, 0.5}, {2}), bias = f64({1, -1}, {2});
  Tensor rm = f64({0, 0}, {2}), rv = f64({1, 1}, {2});
  const double eps = 1e-5;
  Tensor y = batch_norm(x, weight, bias, rm, rv, {.training = true, .momentum = 0.1, .eps = eps});
  double s0 = 1 / std::sqrt(2.0 / 3 + eps), s1 = 1 / std::sqrt(8.0 / 3 + eps);
  check_close(values(y), {1 - 2 * s0, -1 - 0.5 * 2 * s1, 1, -1, 1 + 2 * s0, -1 + 0.5 * 2 * s1});
  // running = 0.9 * running + 0.1 * batch, with the unbiased variance.
  check_close(values(rm), {0.2, 0.4});
  check_close(values(rv), {0.9 + 0.1 * 1, 0.9 + 0.1 * 4});

  // Without affine and without running stats.
  Tensor z = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), {.eps = eps});
  check_close(values(z), {-s0, -2 * s1, 0, 0, s0, 2 * s1});
}

TEST_CASE("batch_norm running-stat updates by hand over spatial positions, float32") {
  // x [2, 1, 2]: one channel, 4 values 1, 3, 5, 7: mean 4, biased var 5, unbiased 20/3.
  Tensor x = Tensor::from_vector<float>({1, 3, 5, 7}, {2, 1, 2});
  Tensor rm = Tensor::from_vector<float>({1}, {1}), rv = Tensor::from_vector<float>({2}, {1});
  batch_norm(x, Tensor(), Tensor(), rm, rv, {.momentum = 0.1});
  CHECK(rm.item() == doctest::Approx(0.9 * 1 + 0.1 * 4));
  CHECK(rv.item() == doctest::Approx(0.9 * 2 + 0.1 * 20.0 / 3));
  batch_norm(x, Tensor(), Tensor(), rm, rv, {.momentum = 0.5});
  CHECK(rm.item() == doctest::Approx(0.5 * 1.3 + 0.5 * 4));
}

TEST_CASE("batch_norm eval uses the running stats and leaves them alone") {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor weight = f64({2, 0.5}, {2}), bias = f64({1, -1}, {2});
  Tensor rm = f64({1, -1}, {2}), rv = f64({4, 0.25}, {2});
  Tensor y = batch_norm(x, weight, bias, rm, rv, {.training = false, .eps = 0});
  // channel 0: (x - 1) / 2 * 2 + 1; channel 1: (x + 1) / 0.5 * 0.5 - 1.
  check_close(values(y), {1, 2, 3, 4, 5, 6});
  check_close(values(rm), {1, -1});
  check_close(values(rv), {4, 0.25});

  // Backward in eval: the per-channel affine.
  Tensor xg = x.detach().clone().set_requires_grad();
  Tensor wg = weight.detach().clone().set_requires_grad();
  Tensor bg = bias.detach().clone().set_requires_grad();
  batch_norm(xg, wg, bg, rm, rv, {.training = false, .eps = 0}).backward(Tensor::ones({3, 2}, DType::f64));
  check_close(values(xg.grad()), {1, 1, 1, 1, 1, 1});
  // d/dw = sum of xhat: channel 0 xhat (0, 1, 2), channel 1 xhat (6, 10, 14).
  check_close(values(wg.grad()), {3, 30});
  check_close(values(bg.grad()), {3, 3});

  // Eval with no running stats: batch statistics.
  Tensor z = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), {.training = false, .eps = 0});
  double s = 1 / std::sqrt(8.0 / 3);
  check_close(values(z), {-2 * s, -2 * s, 0, 0, 2 * s, 2 * s});
}

TEST_CASE("batch_norm with modalities = 2 matches a naive loop and two per-modality calls") {
  const int64_t M = 2, N = 3, C = 3, H = 2, W = 5;
  Generator gen(11);
  Tensor x = random_input({M * N, C, H, W}, gen, -2, 3);
  Tensor weight = random_input({M, C}, gen, 0.5, 1.5), bias = random_input({M * C}, gen);
  Tensor rm = Tensor::rand({M, C}, gen, -1, 1, DType::f64), rv = Tensor::rand({M, C}, gen, 0.5, 2, DType::f64);
  Tensor rm_halves = copy_of(rm), rv_halves = copy_of(rv);
  std::vector<double> rm0 = values(rm), rv0 = values(rv);
  const double eps = 1e-3, momentum = 0.2;
  BatchNormOptions options{.training = true, .momentum = momentum, .eps = eps, .modalities = M};
  Tensor y = batch_norm(x, weight, bias, rm, rv, options);
  Tensor dy = Tensor::rand(y.shape(), gen, -1, 1, DType::f64);
  y.backward(dy);

  // Naive loop for the forward and the running stats.
  std::vector<double> xv = values(x), wv = values(weight), bv = values(bias), yv = values(y);
  const int64_t S = H * W, n = N * S;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c) {
      auto at = [&](int64_t i, int64_t s) { return ((m * N + i) * C + c) * S + s; };
      double sum = 0, sq = 0;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t s = 0; s < S; ++s) sum += xv[at(i, s)];
      double mu = sum / n;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t s = 0; s < S; ++s) sq += (xv[at(i, s)] - mu) * (xv[at(i, s)] - mu);
      double var = sq / n, g = m * C + c;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t s = 0; s < S; ++s)
          CHECK(yv[at(i, s)] == doctest::Approx((xv[at(i, s)] - mu) / std::sqrt(var + eps) * wv[g] + bv[g]));
      CHECK(values(rm)[g] == doctest::Approx((1 - momentum) * rm0[g] + momentum * mu));
      CHECK(values(rv)[g] == doctest::Approx((1 - momentum) * rv0[g] + momentum * var * n / (n - 1)));
    }

  // Two separate M = 1 calls on the halves, with their halves of every parameter.
  std::vector<double> y_halves, dx_halves, dw_halves, db_halves, rm_after, rv_after;
  for (int64_t m = 0; m < M; ++m) {
    Tensor xm = copy_of(x.narrow(m * N, N)).set_requires_grad();
    Tensor wm = copy_of(weight.narrow(m, 1).reshape({C})).set_requires_grad();
    Tensor bm = copy_of(bias.reshape({M, C}).narrow(m, 1).reshape({C})).set_requires_grad();
    Tensor rmm = rm_halves.narrow(m, 1).reshape({C}), rvm = rv_halves.narrow(m, 1).reshape({C});  // views: updated in place
    Tensor ym = batch_norm(xm, wm, bm, rmm, rvm, {.training = true, .momentum = momentum, .eps = eps});
    ym.backward(copy_of(dy.narrow(m * N, N)));
    auto append = [](std::vector<double>& dst, const Tensor& src) {
      auto v = values(src);
      dst.insert(dst.end(), v.begin(), v.end());
    };
    append(y_halves, ym);
    append(dx_halves, xm.grad());
    append(dw_halves, wm.grad());
    append(db_halves, bm.grad());
  }
  check_close(values(y), y_halves);
  check_close(values(x.grad()), dx_halves, 1e-10);
  CHECK(weight.grad().shape() == Shape{M, C});
  CHECK(bias.grad().shape() == Shape{M * C});
  check_close(values(weight.grad()), dw_halves, 1e-10);
  check_close(values(bias.grad()), db_halves, 1e-10);
  check_close(values(rm), values(rm_halves));
  check_close(values(rv), values(rv_halves));
}

TEST_CASE("batch_norm float32 on a larger stacked batch far from 0 gives zero mean and unit variance") {
  // Large enough for the kernels to split work across threads; the offset of 100 tests that the
  // single-pass statistics do not cancel the variance away.
  const int64_t M = 2, N = 8, C = 4, S = 16 * 17;
  Generator gen(12);
  Tensor x = Tensor::rand({M * N, C, 16, 17}, gen, 99, 101);
  std::vector<float> y = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), {.eps = 0, .modalities = M}).to_vector<float>();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c) {
      double sum = 0, sq = 0;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t s = 0; s < S; ++s) {
          double v = y[((m * N + i) * C + c) * S + s];
          sum += v;
          sq += v * v;
        }
      CHECK(std::abs(sum / (N * S)) < 1e-4);
      CHECK(sq / (N * S) == doctest::Approx(1).epsilon(1e-3));
    }
}

TEST_CASE("batch_norm training backward matches the closed form by hand") {
  // One channel, values 1, 2, 3 (mean 2, var 2/3), eps 0, gamma 2, dy = (1, 0, 0).
  // dx = gamma*invstd/n * (n*dy - sum(dy) - xhat*sum(dy*xhat)), xhat = (-1, 0, 1)*invstd.
  Tensor x = f64({1, 2, 3}, {3, 1}).set_requires_grad();
  Tensor w = f64({2}, {1}).set_requires_grad();
  batch_norm(x, w, Tensor(), Tensor(), Tensor(), {.eps = 0}).backward(f64({1, 0, 0}, {3, 1}));
  double invstd = std::sqrt(1.5), xhat0 = -invstd;
  std::vector<double> expect;
  for (double xh : {-invstd, 0.0, invstd}) expect.push_back(2 * invstd / 3 * (3 * (xh == xhat0) - 1 - xh * xhat0));
  check_close(values(x.grad()), expect);
  check_close(values(w.grad()), {xhat0});
}

TEST_CASE("batch_norm argument errors name the shapes") {
  Tensor x = Tensor::zeros({5, 3}), p6 = Tensor::zeros({6}), p3 = Tensor::zeros({3});
  CHECK_THROWS_WITH_AS(batch_norm(x, p6, p6, p6, p6, {.modalities = 2}),
                       "batch_norm: batch 5 of [5, 3] is not divisible by modalities 2",
                       OpError);
  CHECK_THROWS_WITH_AS(batch_norm(Tensor::zeros({4, 3}), p6, Tensor::zeros({2, 3}), p3, p6, {.modalities = 2}),
                       "batch_norm: running_mean must have M*C = 2*3 = 6 values (shape [2, 3] or [6]); got x [4, 3], "
                       "weight [6], bias [2, 3], running_mean [3], running_var [6]",
                       OpError);
  CHECK_THROWS_WITH_AS(batch_norm(x, Tensor::zeros({3, 1}), Tensor(), Tensor(), Tensor()),
                       "batch_norm: weight must have M*C = 1*3 = 3 values (shape [1, 3] or [3]); got x [5, 3], "
                       "weight [3, 1], bias undefined, running_mean undefined, running_var undefined",
                       OpError);
  CHECK_THROWS_WITH_AS(batch_norm(x, Tensor(), Tensor(), p3, Tensor()),
                       "batch_norm: running_mean and running_var must both be given or both be undefined; got x [5, "
                       "3], weight undefined, bias undefined, running_mean [3], running_var undefined",
                       OpError);
  CHECK_THROWS_WITH_AS(batch_norm(Tensor::zeros({2, 3}), Tensor(), Tensor(), Tensor(), Tensor(), {.modalities = 2}),
                       "batch_norm: expected more than 1 value per (modality, channel) when training; got x [2, 3], "
                       "weight undefined, bias undefined, running_mean undefined, running_var undefined with "
                       "modalities 2",
                       OpError);
  CHECK_THROWS_AS(batch_norm(Tensor::zeros({5}), Tensor(), Tensor(), Tensor(), Tensor()), OpError);
  CHECK_THROWS_AS(batch_norm(x, Tensor::zeros({3}, DType::f64), Tensor(), Tensor(), Tensor()), OpError);
  // One value per channel is fine in eval.
  CHECK_NOTHROW(batch_norm(Tensor::zeros({1, 3}), Tensor(), Tensor(), p3, Tensor::ones({3}), {.training = false}));
}

TEST_CASE("dropout keeps about 1-p of 10^5 elements, scaled by 1/(1-p)") {
  const double p = 0.3;
  Generator gen(5);
  Tensor x = Tensor::ones({100000});
  std::vector<float> y = dropout(x, p, true, gen).to_vector<float>();
  int64_t kept = 0;
  for (float v : y) {
    if (v != 0) {
      ++kept;
      CHECK(v == doctest::Approx(1 / (1 - p)));
    }
  }
  CHECK(std::abs(kept / 1e5 - (1 - p)) < 0.01);  // ~7 standard deviations
  CHECK(gen.offset() == 100000);
}

TEST_CASE("dropout mask is the Philox stream: same seed, same mask; next draw, another mask") {
  const double p = 0.5;
  Tensor x = Tensor::arange(1, 40, 1, DType::f64);  // 39 elements: the offset rounds up to 40
  Generator a(77), b(77);
  a.set_state(77, 8);
  b.set_state(77, 8);
  std::vector<double> ya = dropout(x, p, true, a).to_vector<double>();
  CHECK(ya == dropout(x, p, true, b).to_vector<double>());
  CHECK(a.offset() == 48);
  for (int64_t i = 0; i < 39; ++i) {
    bool keep = philox::uniform(philox::word(77, 8, i)) >= p;
    CHECK(ya[i] == (keep ? (i + 1) * 2.0 : 0.0));
  }
  CHECK(ya != dropout(x, p, true, a).to_vector<double>());
}

TEST_CASE("dropout mask is element i <- Philox word offset + i, for any offset and length") {
  // The kernel draws whole counters in batches between a ragged head and tail: lengths and
  // offsets around those edges, and long enough for several batches (and threads).
  const double p = 0.4;
  for (DType dtype : {DType::f32, DType::f64})
    for (uint64_t offset : {0, 1, 2, 3, 6, 4097})
      for (int64_t n : {1, 3, 5, 63, 64, 65, 131, 1000, 70001}) {
        Tensor x = Tensor::arange(1, static_cast<double>(n) + 1, 1, DType::f64);
        Generator gen(123);
        gen.set_state(123, offset);
        std::vector<double> y = dropout(x.to(dtype), p, true, gen).to(DType::f64).to_vector<double>();
        CAPTURE(offset);
        CAPTURE(n);
        int64_t wrong = 0;
        for (int64_t i = 0; i < n; ++i) {
          bool keep = philox::uniform(philox::word(123, offset, static_cast<uint64_t>(i))) >= p;
          double v = static_cast<double>(i + 1) * (1.0 / (1.0 - p));  // x * dropout_scale(p)
          double scaled = dtype == DType::f32 ? static_cast<double>(static_cast<float>(v)) : v;
          wrong += y[static_cast<size_t>(i)] != (keep ? scaled : 0.0);
        }
        CHECK(wrong == 0);
      }
}

TEST_CASE("dropout at eval, p = 0 and p = 1") {
  Generator gen(3);
  Tensor x = Tensor::from_vector<float>({1, -2, 3, 4, 5}, {5});
  CHECK(dropout(x, 0.5, false, gen).to_vector<float>() == x.to_vector<float>());
  CHECK(dropout(x, 0, true, gen).to_vector<float>() == x.to_vector<float>());
  CHECK(gen.offset() == 0);  // identity draws nothing
  CHECK(dropout(x, 1, true, gen).to_vector<float>() == std::vector<float>(5, 0.0f));
  CHECK_THROWS_WITH_AS(dropout(x, 1.5, true, gen), "dropout: probability p must be in [0, 1], got 1.5 for x [5]",
                       OpError);
  // The gradient goes through the kept elements with the same scale.
  Tensor xg = Tensor::ones({64}, DType::f64).set_requires_grad();
  Generator g2(9);
  Tensor y = dropout(xg, 0.25, true, g2);
  y.backward(Tensor::ones({64}, DType::f64));
  CHECK(values(xg.grad()) == values(y));
}

// The finite-difference gradient checks of the family: its op-case table (tests/op_cases/norm.cpp).
TEST_CASE("gradcheck: the norm table") { CHECK(testing::check_gradient_cases(testing::norm_cases()) > 0); }
