// The kernels that the loss, fusion and norm front-ends dispatch through MMF_KERNEL, and the
// shared formulas of base/geometry/ that their CUDA twins call too: each CPU twin against the
// definition it stands for, on small hand-checked cases. (The ops' own tests check the
// front-ends; tests/cuda/ checks the twins against each other on a GPU.)
#include <cmath>
#include <limits>
#include <vector>

#include "base/geometry/fusion.h"
#include "base/geometry/norm.h"
#include "core/cpu/fusion.h"
#include "core/cpu/loss.h"
#include "core/cpu/norm.h"
#include "tests/gradcheck.h"

using namespace mmfuse;

TEST_CASE("Exchange: giver and taker are the cyclic exchange and inverse of each other") {
  for (int64_t modalities : {1, 2, 3, 5}) {
    for (int64_t batch : {1, 3}) {
      for (uint64_t receives = 0; receives < (uint64_t{1} << modalities); ++receives) {
        cpu::Exchange ex;
        ex.batch = batch;
        ex.modalities = modalities;
        ex.receives = receives;
        const auto e = cpu::exchange_index<int64_t>(ex);
        for (int64_t b = 0; b < modalities * batch; ++b) {
          int64_t m = b / batch, n = b % batch;
          int64_t giver = cpu::giver_of(e, b), taker = cpu::taker_of(e, b);
          CHECK(giver == (((receives >> m) & 1) ? ((m + 1) % modalities) * batch + n : -1));
          int64_t prev = (m + modalities - 1) % modalities;
          CHECK(taker == (((receives >> prev) & 1) ? prev * batch + n : -1));
          if (giver >= 0) CHECK(cpu::taker_of(e, giver) == b);
        }
        // The 32-bit form the CUDA kernels use agrees.
        const auto e32 = cpu::exchange_index<int32_t>(ex);
        for (int32_t b = 0; b < modalities * batch; ++b) {
          CHECK(cpu::giver_of(e32, b) == cpu::giver_of(e, int64_t{b}));
          CHECK(cpu::taker_of(e32, b) == cpu::taker_of(e, int64_t{b}));
        }
      }
    }
  }
}

TEST_CASE("pixel_shift_offset: down, right, left, up; the distance doubles each cycle of four") {
  const int64_t dirs[4][2] = {{1, 0}, {0, 1}, {0, -1}, {-1, 0}};
  for (int64_t q = 0; q < 12; ++q) {
    int64_t dh = 0, dw = 0;
    cpu::pixel_shift_offset(q, 3, dh, dw);
    CHECK(dh == dirs[q % 4][0] * (int64_t{3} << (q / 4)));
    CHECK(dw == dirs[q % 4][1] * (int64_t{3} << (q / 4)));
  }
}

TEST_CASE("fusion ops refuse more modalities than an Exchange holds, on every device") {
  Tensor x = Tensor::zeros({65, 2, 1, 1}, DType::f32);
  CHECK_THROWS_WITH_AS(channel_shuffle(x, 65), doctest::Contains("at most 64 modalities"), OpError);
  CHECK_THROWS_WITH_AS(channel_shuffle_shape(x.shape(), 65), doctest::Contains("at most 64"), OpError);
  CHECK_THROWS_WITH_AS(pixel_shift_add(x, x, 65), doctest::Contains("at most 64 modalities"), OpError);
  Tensor y = Tensor::zeros({64, 2, 1, 1}, DType::f32);
  CHECK(channel_shuffle(y, 64).shape() == y.shape());
}

TEST_CASE("MMTM gate and the ensemble's weights: the shared formulas") {
  CHECK(cpu::gate_value(0.0, 2.0) == doctest::Approx(1.0));
  CHECK(cpu::gate_value(1.5f, 2.0) == doctest::Approx(2.0 / (1 + std::exp(-1.5))));
  // d/de of scale * sigmoid(e) is g * (1 - g / scale).
  const double e = 0.3, scale = 2.0, h = 1e-6, g = cpu::gate_value(e, scale);
  const double numeric = (cpu::gate_value(e + h, scale) - cpu::gate_value(e - h, scale)) / (2 * h);
  CHECK(cpu::gate_grad(1.0, g, scale) == doctest::Approx(numeric).epsilon(1e-8));

  const std::vector<float> alpha = {0.5f, -1.0f, 2.0f};
  std::vector<double> w(3);
  cpu::ensemble_weights<float>(alpha.data(), w.data(), 3);
  double total = 0;
  for (float a : alpha) total += std::exp(static_cast<double>(a));
  for (size_t m = 0; m < 3; ++m) CHECK(w[m] == doctest::Approx(std::exp(static_cast<double>(alpha[m])) / total));
  // dalpha_m = w_m (dw_m - sum_j w_j dw_j): zero when every dw is equal.
  const std::vector<double> dw_equal = {4, 4, 4}, dw = {1, 0, 0};
  std::vector<double> dalpha(3);
  cpu::ensemble_alpha_grad(w.data(), dw_equal.data(), dalpha.data(), 3);
  for (double d : dalpha) CHECK(d == doctest::Approx(0.0));
  cpu::ensemble_alpha_grad(w.data(), dw.data(), dalpha.data(), 3);
  CHECK(dalpha[0] == doctest::Approx(w[0] * (1 - w[0])));
  CHECK(dalpha[1] == doctest::Approx(-w[1] * w[0]));
}

TEST_CASE("the loss reductions' CPU twins: target check, totals over a divisor") {
  const std::vector<int32_t> target = {0, -100, 2, 3, -100, 7};
  cpu::TargetCheck check;
  cpu::cross_entropy_check_targets(target.data(), 6, 4, -100, &check);
  CHECK(check.counted == 4);
  CHECK(check.first_bad == 5);  // 7 is outside [0, 4)
  cpu::cross_entropy_check_targets(target.data(), 5, 4, -100, &check);
  CHECK(check.counted == 3);
  CHECK(check.first_bad == -1);

  const std::vector<double> loss = {0.5, 0.0, 1.25, 2.0};
  float out = 0;
  cpu::cross_entropy_total<float>(loss.data(), 4, 1.0, &out);
  CHECK(out == 3.75f);
  cpu::cross_entropy_total<float>(loss.data(), 4, 3.0, &out);
  CHECK(out == static_cast<float>(3.75 / 3.0));
  cpu::cross_entropy_total<float>(loss.data(), 0, std::numeric_limits<double>::quiet_NaN(), &out);
  CHECK(std::isnan(out));

  const std::vector<double> x = {1, -2, 3}, t = {0, 0, 1};
  double sum = 0;
  cpu::pointwise_loss_sum<double>(x.data(), t.data(), &sum, 3, cpu::PointwiseLoss::l1, 1.0);
  CHECK(sum == 5.0);
  cpu::pointwise_loss_sum<double>(x.data(), t.data(), &sum, 3, cpu::PointwiseLoss::mse, 3.0);
  CHECK(sum == doctest::Approx((1.0 + 4.0 + 4.0) / 3.0));
}

TEST_CASE("batch_norm_prepare: running statistics read in eval, moved in training; invstd") {
  std::vector<float> rm = {1.0f, -2.0f}, rv = {4.0f, 0.25f};
  std::vector<double> mean(2), var(2), invstd(2);
  // Eval: mean and var come from the running statistics, which stay.
  cpu::batch_norm_prepare<float>(rm.data(), rv.data(), 2, false, 0, 0.1, 1e-5, mean.data(), var.data(),
                                 invstd.data());
  CHECK(mean == std::vector<double>{1.0, -2.0});
  CHECK(var == std::vector<double>{4.0, 0.25});
  CHECK(invstd[0] == doctest::Approx(1 / std::sqrt(4.0 + 1e-5)));
  CHECK(rm == std::vector<float>{1.0f, -2.0f});
  // Training over 5 values: running = 0.9 running + 0.1 batch, the variance unbiased (5/4).
  mean = {3.0, 0.0};
  var = {2.0, 1.0};
  cpu::batch_norm_prepare<float>(rm.data(), rv.data(), 2, true, 5, 0.1, 1e-5, mean.data(), var.data(),
                                 invstd.data());
  CHECK(rm[0] == doctest::Approx(0.9 * 1.0 + 0.1 * 3.0));
  CHECK(rv[1] == doctest::Approx(0.9 * 0.25 + 0.1 * 1.0 * 5.0 / 4.0));
  CHECK(invstd[1] == doctest::Approx(1 / std::sqrt(1.0 + 1e-5)));
  // Batch statistics without running statistics (update_count 0): nothing is updated.
  cpu::batch_norm_prepare<float>(nullptr, nullptr, 2, true, 0, 0.1, 1e-5, mean.data(), var.data(), invstd.data());
  CHECK(invstd[0] == doctest::Approx(1 / std::sqrt(2.0 + 1e-5)));

  double m = 0, v = 0;
  cpu::bn_moments(10.0, 2.0, 6.0, 4, m, v);  // values 10 + {d}: sum d = 2, sum d^2 = 6
  CHECK(m == 10.5);
  CHECK(v == 6.0 / 4 - 0.25);
}
