// Resize ops: values derived by hand from PyTorch's index formulas, error messages, and
// gradient checks at odd sizes.
#include <vector>

#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::check_close;

namespace {

Tensor map2x2() { return Tensor::from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2}); }
Tensor row0to4() { return Tensor::from_vector<double>({0, 1, 2, 3, 4}, {1, 1, 1, 5}); }

}  // namespace

TEST_CASE("upsample_bilinear 2x2 -> 4x4, align_corners true") {
  // src = d * (2-1)/(4-1): 0, 1/3, 2/3, 1 on both axes; x = 1 + src_w + 2 src_h.
  double t = 1.0 / 3;
  Tensor y = upsample_bilinear(map2x2(), 4, 4, true);
  CHECK(y.shape() == Shape{1, 1, 4, 4});
  check_close(y.to_vector<double>(), {1, 1 + t, 1 + 2 * t, 2,            //
                                      1 + 2 * t, 2, 2 + t, 2 + 2 * t,    //
                                      1 + 4 * t, 2 + 2 * t, 3, 3 + t,    //
                                      3, 3 + t, 3 + 2 * t, 4});
}

TEST_CASE("upsample_bilinear 2x2 -> 4x4, align_corners false (PyTorch's default numbers)") {
  // src = max(0, (d + 0.5) / 2 - 0.5): 0, 0.25, 0.75, 1.25 -> the last clamps onto pixel 1.
  Tensor x = map2x2().set_requires_grad();
  Tensor y = upsample_bilinear(x, 4, 4, false);
  check_close(y.to_vector<double>(), {1, 1.25, 1.75, 2,      //
                                      1.5, 1.75, 2.25, 2.5,  //
                                      2.5, 2.75, 3.25, 3.5,  //
                                      3, 3.25, 3.75, 4});
  // float32 computes the same indices and weights.
  auto yf = upsample_bilinear(map2x2().to(DType::f32), 4, 4, false).to_vector<float>();
  CHECK(yf[5] == 1.75f);
  CHECK(yf[15] == 4.0f);
  // Adjoint: per axis the weights into each input sum to 1 + 0.75 + 0.25 = 2.
  y.backward(Tensor::ones({1, 1, 4, 4}, DType::f64));
  check_close(x.grad().to_vector<double>(), {4, 4, 4, 4});
}

TEST_CASE("upsample_bilinear downsampling and 1x1 outputs") {
  Tensor x = Tensor::from_vector<double>({0, 1, 2, 3}, {1, 1, 1, 4});
  // 4 -> 2, align false: src = (d + 0.5) * 2 - 0.5 = 0.5, 2.5: averages of neighbours.
  check_close(upsample_bilinear(x, 1, 2, false).to_vector<double>(), {0.5, 2.5});
  // align true: src = d * 3: the end pixels.
  check_close(upsample_bilinear(x, 1, 2, true).to_vector<double>(), {0, 3});
  // One output: align true takes pixel 0, align false the centre (src = 0.5 * 2 - 0.5 = 0.5).
  check_close(upsample_bilinear(map2x2(), 1, 1, true).to_vector<double>(), {1});
  check_close(upsample_bilinear(map2x2(), 1, 1, false).to_vector<double>(), {2.5});
  // Several planes stay apart.
  Tensor planes = Tensor::from_vector<double>({1, 2, 3, 4, 10, 20, 30, 40}, {2, 1, 2, 2});
  auto y = upsample_bilinear(planes, 4, 4, false).to_vector<double>();
  CHECK(y[5] == doctest::Approx(1.75));
  CHECK(y[16 + 5] == doctest::Approx(17.5));
}

TEST_CASE("upsample_bilinear_scale: out = floor(in * scale), source step 1/scale") {
  // 5 -> floor(7.5) = 7; src = max(0, (d + 0.5) / 1.5 - 0.5); the height 1 -> 1 is a copy.
  Tensor y = upsample_bilinear_scale(row0to4(), 1.5, false);
  CHECK(y.shape() == Shape{1, 1, 1, 7});
  check_close(y.to_vector<double>(), {0, 0.5, 7.0 / 6, 11.0 / 6, 2.5, 19.0 / 6, 23.0 / 6});
  // Asking for the size 7 instead steps by 5/7: output 5 reads 5.5 * 5/7 - 0.5, not 19/6.
  CHECK(upsample_bilinear(row0to4(), 1, 7, false).to_vector<double>()[5] == doctest::Approx(5.5 * 5 / 7 - 0.5));
  // Downscale 0.5: 2x5 -> 1x2, step 2 (not 5/2) on the width: src 0.5, 2.5 instead of 0.75,
  // 3.25; the height's src (0 + 0.5) * 2 - 0.5 = 0.5 averages the two rows (row 1 = row 0 + 10).
  Tensor two_rows = Tensor::from_vector<double>({0, 1, 2, 3, 4, 10, 11, 12, 13, 14}, {1, 1, 2, 5});
  check_close(upsample_bilinear_scale(two_rows, 0.5, false).to_vector<double>(), {5.5, 7.5});
  check_close(upsample_bilinear(two_rows, 1, 2, false).to_vector<double>(), {5.75, 8.25});
  // align_corners ignores the scale: step (5-1)/(7-1).
  check_close(upsample_bilinear_scale(row0to4(), 1.5, true).to_vector<double>(),
              {0, 2.0 / 3, 4.0 / 3, 2, 8.0 / 3, 10.0 / 3, 4});
  // Equal sizes copy even when the scale is not 1 (5 * 1.1 -> 5).
  check_close(upsample_bilinear_scale(row0to4(), 1.1, false).to_vector<double>(), {0, 1, 2, 3, 4});
  // float32 (the ratio 1/1.5 rounded to float).
  auto yf = upsample_bilinear_scale(row0to4().to(DType::f32), 1.5, false).to_vector<float>();
  CHECK(yf[1] == doctest::Approx(0.5).epsilon(1e-6));
  CHECK(yf[6] == doctest::Approx(23.0 / 6).epsilon(1e-6));
}

TEST_CASE("upsample_nearest by hand") {
  // 3 -> 5: src = floor(d * 0.6) = 0, 0, 1, 1, 2; height 1 -> 2 doubles: src = d >> 1.
  Tensor x = Tensor::from_vector<double>({10, 20, 30}, {1, 1, 1, 3}).set_requires_grad();
  Tensor y = upsample_nearest(x, 2, 5);
  CHECK(y.shape() == Shape{1, 1, 2, 5});
  CHECK(y.to_vector<double>() == std::vector<double>{10, 10, 20, 20, 30, 10, 10, 20, 20, 30});
  y.backward(Tensor::ones({1, 1, 2, 5}, DType::f64));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{4, 4, 2});

  // 2x2 -> 3x3: src = floor(d * 2/3) = 0, 0, 1.
  CHECK(upsample_nearest(map2x2(), 3, 3).to_vector<double>() == std::vector<double>{1, 1, 2, 1, 1, 2, 3, 3, 4});
  // 5 -> 3 (downsampling): src = floor(d * 5/3) = 0, 1, 3.
  CHECK(upsample_nearest(row0to4(), 1, 3).to_vector<double>() == std::vector<double>{0, 1, 3});
  CHECK(upsample_nearest(row0to4().to(DType::f32), 1, 3).to_vector<float>() == std::vector<float>{0, 1, 3});
}

TEST_CASE("resize argument errors name the op and the shapes") {
  CHECK_THROWS_WITH_AS(upsample_bilinear(Tensor::zeros({2, 2}), 4, 4, false),
                       "upsample_bilinear: input must be 4-d [N, C, H, W], got [2, 2]", OpError);
  CHECK_THROWS_WITH_AS(upsample_nearest(Tensor::zeros({1, 1, 2, 2}), 0, 3),
                       "upsample_nearest: output size must be positive, got 0x3 for input [1, 1, 2, 2]", OpError);
  CHECK_THROWS_WITH_AS(upsample_nearest(Tensor::zeros({1, 1, 0, 2}), 3, 3),
                       "upsample_nearest: input [1, 1, 0, 2] has an empty spatial dim", OpError);
  CHECK_THROWS_WITH_AS(upsample_bilinear_scale(Tensor::zeros({1, 1, 2, 2}), -1, false),
                       "upsample_bilinear: scale factor must be positive, got -1", OpError);
  CHECK_THROWS_WITH_AS(upsample_bilinear_scale(Tensor::zeros({1, 1, 4, 4}), 0.1, true),
                       "upsample_bilinear: scale factor 0.1 gives an empty output for input [1, 1, 4, 4]", OpError);
  CHECK_THROWS_WITH_AS(upsample_nearest(Tensor::zeros({1, 1, 2, 2}, DType::i32), 3, 3),
                       "upsample_nearest: expects a float32 or float64 tensor, got [1, 1, 2, 2] int32 cpu", OpError);
}

// The finite-difference gradient checks of the family: its op-case table (tests/op_cases/resize.cpp).
TEST_CASE("gradcheck: the resize table") { CHECK(testing::check_gradient_cases(testing::resize_cases()) > 0); }
