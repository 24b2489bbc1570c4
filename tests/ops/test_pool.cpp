// Pooling ops: output sizes as PyTorch, forward values and routed gradients by hand, error
// messages, and gradient checks at odd sizes.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::check_close;

namespace {

Tensor map4x4() {
  return Tensor::from_vector<double>({1, 2, 5, 3,  //
                                      4, 0, 1, 8,  //
                                      7, 2, 9, 1,  //
                                      3, 6, 2, 4},
                                     {1, 1, 4, 4});
}

}  // namespace

TEST_CASE("pool output sizes follow PyTorch, ceil_mode as Caffe") {
  // 3x3, stride 2, pad 1.
  CHECK(pool_output_size(7, 3, 2, 1, false) == 4);
  CHECK(pool_output_size(7, 3, 2, 1, true) == 4);
  CHECK(pool_output_size(6, 3, 2, 1, false) == 3);
  CHECK(pool_output_size(6, 3, 2, 1, true) == 4);
  // GoogLeNet's 3x3/2 pooling of a 112 map: Caffe gives 56, floor gives 55.
  CHECK(pool_output_size(112, 3, 2, 0, true) == 56);
  CHECK(pool_output_size(112, 3, 2, 0, false) == 55);
  // The last window would start at 6 = in + pad: dropped (ceil alone would give 4).
  CHECK(pool_output_size(5, 2, 2, 1, true) == 3);
  // Stride beyond the kernel, no padding: the window starting at 6 would lie past the input.
  CHECK(pool_output_size(5, 1, 3, 0, true) == 2);
  // Input smaller than the kernel: floor division of a negative numerator.
  CHECK(pool_output_size(2, 3, 2, 0, false) == 0);

  Tensor x = Tensor::zeros({2, 3, 7, 6}, DType::f32);
  CHECK(max_pool2d(x, Pool2dOptions::square(3, 2, 1)).shape() == Shape{2, 3, 4, 3});
  CHECK(max_pool2d(x, Pool2dOptions::square(3, 2, 1, true)).shape() == Shape{2, 3, 4, 4});
  CHECK(avg_pool2d(x, Pool2dOptions::square(3, 2, 1, true)).shape() == Shape{2, 3, 4, 4});
  Pool2dOptions rect{3, 2, 1, 2, 1, 0};
  CHECK(avg_pool2d(x, rect).shape() == Shape{2, 3, 7, 3});
}

TEST_CASE("max_pool2d 2x2/2 by hand, gradient to the argmax") {
  Tensor x = map4x4().set_requires_grad();
  Tensor y = max_pool2d(x, Pool2dOptions::square(2, 2));
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  CHECK(y.to_vector<double>() == std::vector<double>{4, 8, 7, 9});
  y.backward(Tensor::from_vector<double>({10, 20, 30, 40}, {1, 1, 2, 2}));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0, 0, 0,   //
                                                             10, 0, 0, 20,  //
                                                             30, 0, 40, 0,  //
                                                             0, 0, 0, 0});
  // float32 gives the same.
  CHECK(max_pool2d(map4x4().to(DType::f32), Pool2dOptions::square(2, 2)).to_vector<float>() ==
        std::vector<float>{4, 8, 7, 9});
}

TEST_CASE("max_pool2d: ties go to the first maximum in scan order") {
  Tensor x = Tensor::ones({1, 1, 2, 3}, DType::f64).set_requires_grad();
  Tensor y = max_pool2d(x, Pool2dOptions::square(2, 1));
  CHECK(y.to_vector<double>() == std::vector<double>{1, 1});
  y.backward(Tensor::ones({1, 1, 1, 2}, DType::f64));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 1, 0, 0, 0, 0});
}

TEST_CASE("max_pool2d 3x3/2 pad 1: padding is -inf, overlapping windows add gradients") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, -9}, {1, 1, 3, 3}).set_requires_grad();
  Tensor y = max_pool2d(x, Pool2dOptions::square(3, 2, 1));
  CHECK(y.to_vector<double>() == std::vector<double>{5, 6, 8, 8});
  y.backward(Tensor::ones({1, 1, 2, 2}, DType::f64));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0, 0, 0, 1, 1, 0, 2, 0});
  // All negative: a padded cell (0) must never win.
  Tensor neg = Tensor::from_vector<double>({-1, -2, -3, -4, -5, -6, -7, -8, -9}, {1, 1, 3, 3});
  CHECK(max_pool2d(neg, Pool2dOptions::square(3, 2, 1)).to_vector<double>() == std::vector<double>{-1, -2, -4, -5});
}

TEST_CASE("max_pool2d keeps planes apart") {
  // Two samples x two channels, each plane a constant: the max of each plane is its value.
  std::vector<double> v;
  for (int p = 0; p < 4; ++p)
    for (int i = 0; i < 9; ++i) v.push_back(p * 10 + i);
  Tensor x = Tensor::from_vector<double>(v, {2, 2, 3, 3});
  CHECK(max_pool2d(x, Pool2dOptions::square(3, 3)).to_vector<double>() == std::vector<double>{8, 18, 28, 38});
  CHECK(avg_pool2d(x, Pool2dOptions::square(3, 3)).to_vector<double>() == std::vector<double>{4, 14, 24, 34});
}

TEST_CASE("avg_pool2d 2x2/2 by hand") {
  Tensor x = map4x4().set_requires_grad();
  Tensor y = avg_pool2d(x, Pool2dOptions::square(2, 2));
  CHECK(y.to_vector<double>() == std::vector<double>{1.75, 4.25, 4.5, 4});
  y.backward(Tensor::from_vector<double>({4, 8, 12, 16}, {1, 1, 2, 2}));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
}

TEST_CASE("avg_pool2d 3x3/2 pad 1: count_include_pad both ways") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  Pool2dOptions o = Pool2dOptions::square(3, 2, 1);
  check_close(avg_pool2d(x, o).to_vector<double>(), {12.0 / 9, 16.0 / 9, 24.0 / 9, 28.0 / 9});
  o.count_include_pad = false;
  check_close(avg_pool2d(x, o).to_vector<double>(), {3, 4, 6, 7});
}

TEST_CASE("avg_pool2d with ceil_mode: the divisor stops at the padded bounds") {
  // 4x4 map of 0..15, 3x3/2 pad 1 ceil: 3x3 outputs; the last window on each axis covers
  // input index 3 and the right padding only (2 cells), not the cell beyond the padding.
  std::vector<double> v(16);
  for (int i = 0; i < 16; ++i) v[i] = i;
  Tensor x = Tensor::from_vector<double>(v, {1, 1, 4, 4}).set_requires_grad();
  Pool2dOptions o = Pool2dOptions::square(3, 2, 1, true);
  Tensor y = avg_pool2d(x, o);
  CHECK(y.shape() == Shape{1, 1, 3, 3});
  check_close(y.to_vector<double>(), {10.0 / 9, 24.0 / 9, 10.0 / 6,  //
                                      51.0 / 9, 90.0 / 9, 33.0 / 6,  //
                                      25.0 / 6, 42.0 / 6, 15.0 / 4});
  // Backward of the corner output alone: x[3][3] receives 1/4.
  y.backward(Tensor::from_vector<double>({0, 0, 0, 0, 0, 0, 0, 0, 1}, {1, 1, 3, 3}));
  std::vector<double> want(16, 0.0);
  want[15] = 0.25;
  CHECK(x.grad().to_vector<double>() == want);

  o.count_include_pad = false;
  check_close(avg_pool2d(x, o).to_vector<double>(), {2.5, 4, 5, 8.5, 10, 11, 12.5, 14, 15});
}

TEST_CASE("global_avg_pool over every dim after the channels") {
  Tensor x2 = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(global_avg_pool(x2).shape() == Shape{2, 3});
  CHECK(global_avg_pool(x2).to_vector<double>() == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(global_avg_pool(x2, true).shape() == Shape{2, 3});

  Tensor x4 = Tensor::from_vector<double>({1, 2, 3, 4, 10, 20, 30, 40}, {1, 2, 2, 2}).set_requires_grad();
  CHECK(global_avg_pool(x4).shape() == Shape{1, 2});
  CHECK(global_avg_pool(x4).to_vector<double>() == std::vector<double>{2.5, 25});
  Tensor k = global_avg_pool(x4, true);
  CHECK(k.shape() == Shape{1, 2, 1, 1});
  k.backward(Tensor::from_vector<double>({4, 8}, {1, 2, 1, 1}));
  CHECK(x4.grad().to_vector<double>() == std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2});

  // [N, C, T, H, W]
  std::vector<double> v(2 * 3 * 4);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  Tensor x5 = Tensor::from_vector<double>(v, {1, 2, 3, 1, 4});
  CHECK(global_avg_pool(x5).to_vector<double>() == std::vector<double>{5.5, 17.5});
  CHECK(global_avg_pool(x5, true).shape() == Shape{1, 2, 1, 1, 1});
  CHECK(global_avg_pool(x5.to(DType::f32)).to_vector<float>() == std::vector<float>{5.5f, 17.5f});
}

TEST_CASE("pooling argument errors name the op and the shapes") {
  Tensor x = Tensor::zeros({1, 1, 4, 4});
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::zeros({1, 4, 4}), Pool2dOptions::square(2, 2)),
                       "max_pool2d: input must be 4-d [N, C, H, W], got [1, 4, 4]", OpError);
  CHECK_THROWS_WITH_AS(max_pool2d(x, Pool2dOptions::square(2, 2, 2)),
                       "max_pool2d: pad should be at most half of the kernel, got pad 2x2 for kernel 2x2", OpError);
  CHECK_THROWS_WITH_AS(avg_pool2d(x, Pool2dOptions{}), "avg_pool2d: kernel must be positive, got 0x0", OpError);
  CHECK_THROWS_WITH_AS(avg_pool2d(x, Pool2dOptions{2, 2, 0, 1}), "avg_pool2d: stride must be positive, got 0x1",
                       OpError);
  CHECK_THROWS_WITH_AS(avg_pool2d(x, Pool2dOptions{2, 2, 1, 1, -1, 0}),
                       "avg_pool2d: pad must be non-negative, got -1x0", OpError);
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::zeros({1, 1, 2, 5}), Pool2dOptions::square(3, 1)),
                       "max_pool2d: input [1, 1, 2, 5] is too small for kernel 3x3 with pad 0x0 (output would be 0x3)",
                       OpError);
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::zeros({1, 1, 0, 4}), Pool2dOptions::square(1, 1)),
                       "max_pool2d: input [1, 1, 0, 4] has an empty spatial dim", OpError);
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::zeros({1, 1, 4, 4}, DType::i32), Pool2dOptions::square(2, 2)),
                       "max_pool2d: expects a float32 or float64 tensor, got [1, 1, 4, 4] int32 cpu", OpError);
  CHECK_THROWS_WITH_AS(global_avg_pool(Tensor::zeros({5})),
                       "global_avg_pool: input must have rank >= 2 ([N, C, ...]), got [5]", OpError);
}

TEST_CASE("max_pool2d equals a window-by-window scan: values, ties, NaN and the gradient's route") {
  // The kernel walks a row of outputs at a time; this reference walks one window after another
  // in scan order. Small integers make ties common; a few NaNs are planted.
  // float32 runs the kernel's vectorised columns (int32 indices) on wider planes; values are
  // small integers, exact in both types.
  Generator gen(11);
  for (DType dtype : {DType::f64, DType::f32})
  for (int64_t kh = 1; kh <= 4; ++kh)
    for (int64_t kw = 1; kw <= 5; ++kw)
      for (int64_t stride = 1; stride <= 3; ++stride)
        for (int64_t pad = 0; pad <= std::min(kh, kw) / 2; ++pad)
          for (bool ceil_mode : {false, true}) {
            int64_t H = 2 + (kh + kw + stride) % 6, W = 3 + (kw * 2 + pad) % 7 + (dtype == DType::f32 ? 19 : 0);
            if (H + 2 * pad < kh || W + 2 * pad < kw) continue;
            Pool2dOptions o{kh, kw, stride, stride, pad, pad, ceil_mode};
            std::vector<double> v = Tensor::rand({2, 2, H, W}, gen, 0, 4, DType::f64).to_vector<double>();
            for (auto& e : v) e = std::floor(e);
            v[3] = std::nan("");
            v[v.size() - 5] = std::nan("");
            v[v.size() / 2] = std::nan("");
            v[v.size() / 3] = -INFINITY;
            Tensor x = Tensor::from_vector<double>(v, {2, 2, H, W}).to(dtype).set_requires_grad();
            Tensor y = max_pool2d(x, o);
            int64_t OH = y.shape()[2], OW = y.shape()[3];
            std::vector<double> gy(static_cast<size_t>(4 * OH * OW));
            for (size_t i = 0; i < gy.size(); ++i) gy[i] = static_cast<double>(i + 1);
            y.backward(Tensor::from_vector<double>(gy, y.shape()).to(dtype));
            std::vector<double> want_y, want_gx(v.size(), 0.0);
            for (int64_t p = 0; p < 4; ++p)
              for (int64_t oh = 0; oh < OH; ++oh)
                for (int64_t ow = 0; ow < OW; ++ow) {
                  int64_t h0 = std::max<int64_t>(oh * stride - pad, 0), h1 = std::min(oh * stride - pad + kh, H);
                  int64_t w0 = std::max<int64_t>(ow * stride - pad, 0), w1 = std::min(ow * stride - pad + kw, W);
                  double best = -INFINITY;
                  int64_t at = h0 * W + w0;
                  for (int64_t h = h0; h < h1; ++h)
                    for (int64_t w = w0; w < w1; ++w) {
                      double e = v[static_cast<size_t>(p * H * W + h * W + w)];
                      if (e > best || std::isnan(e)) best = e, at = h * W + w;
                    }
                  want_y.push_back(best);
                  want_gx[static_cast<size_t>(p * H * W + at)] += gy[static_cast<size_t>((p * OH + oh) * OW + ow)];
                }
            bool f32 = dtype == DType::f32;
            CAPTURE(f32);
            CAPTURE(kh);
            CAPTURE(kw);
            CAPTURE(stride);
            CAPTURE(pad);
            CAPTURE(ceil_mode);
            std::vector<double> got = y.to(DType::f64).to_vector<double>();
            REQUIRE(got.size() == want_y.size());
            for (size_t i = 0; i < got.size(); ++i)
              CHECK(((std::isnan(got[i]) && std::isnan(want_y[i])) || got[i] == want_y[i]));
            CHECK(x.grad().to(DType::f64).to_vector<double>() == want_gx);
          }
}

// The finite-difference gradient checks of the family: its op-case table (tests/op_cases/pool.cpp).
TEST_CASE("gradcheck: the pool table") { CHECK(testing::check_gradient_cases(testing::pool_cases()) > 0); }
