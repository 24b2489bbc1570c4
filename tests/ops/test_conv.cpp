// conv2d and conv_transpose2d: forward against naive loops written here, the adjoint identity,
// errors, float32 against float64, and gradient checks for every option combination (the
// combinations: tests/op_cases/conv.h, shared with the conv op-case table).
#include <cmath>

#include "core/cpu/dnnl.h"
#include "tests/gradcheck.h"
#include "tests/op_cases/conv.h"

using namespace mmfuse;
using mmfuse::testing::check_close;
using mmfuse::testing::check_same_bits_for_thread_counts;
using mmfuse::testing::conv_option_cases;
using mmfuse::testing::ConvOptionCase;
using mmfuse::testing::random_input;

namespace {

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

// conv2d by its definition: y[n, o, oy, ox] = b[o] + sum over the group's channels and taps.
std::vector<double> naive_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o) {
  auto xv = x.to_vector<double>(), wv = w.to_vector<double>();
  auto bv = b.defined() ? b.to_vector<double>() : std::vector<double>();
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  int64_t O = w.size(0), cg = w.size(1), kh = w.size(2), kw = w.size(3), og = O / o.groups;
  int64_t OH = out_size(H, kh, o.stride_h, o.pad_h, o.dilation_h), OW = out_size(W, kw, o.stride_w, o.pad_w, o.dilation_w);
  std::vector<double> y(N * O * OH * OW, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oc = 0; oc < O; ++oc)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double acc = b.defined() ? bv[oc] : 0.0;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t ki = 0; ki < kh; ++ki)
              for (int64_t kj = 0; kj < kw; ++kj) {
                int64_t iy = oy * o.stride_h - o.pad_h + ki * o.dilation_h;
                int64_t ix = ox * o.stride_w - o.pad_w + kj * o.dilation_w;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                int64_t ic = (oc / og) * cg + c;
                acc += xv[((n * C + ic) * H + iy) * W + ix] * wv[((oc * cg + c) * kh + ki) * kw + kj];
              }
          y[((n * O + oc) * OH + oy) * OW + ox] = acc;
        }
  return y;
}

// conv_transpose2d by scattering: every input pixel adds weight-scaled copies onto the output.
std::vector<double> naive_conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b,
                                           const ConvTranspose2dOptions& o) {
  auto xv = x.to_vector<double>(), wv = w.to_vector<double>();
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  int64_t og = w.size(1), kh = w.size(2), kw = w.size(3), O = og * o.groups, cg = C / o.groups;
  int64_t OH = (H - 1) * o.stride_h - 2 * o.pad_h + o.dilation_h * (kh - 1) + o.output_padding_h + 1;
  int64_t OW = (W - 1) * o.stride_w - 2 * o.pad_w + o.dilation_w * (kw - 1) + o.output_padding_w + 1;
  std::vector<double> y(N * O * OH * OW, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t ic = 0; ic < C; ++ic)
      for (int64_t iy = 0; iy < H; ++iy)
        for (int64_t ix = 0; ix < W; ++ix)
          for (int64_t c = 0; c < og; ++c)
            for (int64_t ki = 0; ki < kh; ++ki)
              for (int64_t kj = 0; kj < kw; ++kj) {
                int64_t oy = iy * o.stride_h - o.pad_h + ki * o.dilation_h;
                int64_t ox = ix * o.stride_w - o.pad_w + kj * o.dilation_w;
                if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
                int64_t oc = (ic / cg) * og + c;
                y[((n * O + oc) * OH + oy) * OW + ox] +=
                    xv[((n * C + ic) * H + iy) * W + ix] * wv[((ic * og + c) * kh + ki) * kw + kj];
              }
  if (b.defined()) {
    auto bv = b.to_vector<double>();
    for (int64_t i = 0; i < static_cast<int64_t>(y.size()); ++i) y[i] += bv[(i / (OH * OW)) % O];
  }
  return y;
}

// d<conv2d(x, w), gy>/dw by its definition.
std::vector<double> naive_conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Shape& w_shape,
                                             const Conv2dOptions& o) {
  auto xv = x.to_vector<double>(), gv = gy.to_vector<double>();
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), OH = gy.size(2), OW = gy.size(3);
  int64_t O = w_shape[0], cg = w_shape[1], kh = w_shape[2], kw = w_shape[3], og = O / o.groups;
  std::vector<double> dw(shape_numel(w_shape), 0.0);
  for (int64_t oc = 0; oc < O; ++oc)
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t ki = 0; ki < kh; ++ki)
        for (int64_t kj = 0; kj < kw; ++kj) {
          double acc = 0;
          for (int64_t n = 0; n < N; ++n)
            for (int64_t oy = 0; oy < OH; ++oy)
              for (int64_t ox = 0; ox < OW; ++ox) {
                int64_t iy = oy * o.stride_h - o.pad_h + ki * o.dilation_h;
                int64_t ix = ox * o.stride_w - o.pad_w + kj * o.dilation_w;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                int64_t ic = (oc / og) * cg + c;
                acc += gv[((n * O + oc) * OH + oy) * OW + ox] * xv[((n * C + ic) * H + iy) * W + ix];
              }
          dw[((oc * cg + c) * kh + ki) * kw + kj] = acc;
        }
  return dw;
}

ConvTranspose2dOptions transpose_options(const Conv2dOptions& o, int64_t output_padding_h = 0,
                                         int64_t output_padding_w = 0) {
  return {o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dilation_h, o.dilation_w, o.groups, output_padding_h,
          output_padding_w};
}

double dot(const Tensor& a, const Tensor& b) { return sum(mul(a, b)).item(); }

}  // namespace

TEST_CASE("conv2d by hand") {
  // 3x3 image 1..9, 2x2 kernel of ones: every output is the sum of a 2x2 window.
  Tensor x = Tensor::arange(1, 10, 1, DType::f64).reshape({1, 1, 3, 3});
  Tensor w = Tensor::ones({1, 1, 2, 2}, DType::f64);
  CHECK(conv2d(x, w).to_vector<double>() == std::vector<double>{12, 16, 24, 28});
  Tensor b = Tensor::from_vector<double>({0.5}, {1});
  Tensor y = conv2d(x, w, b, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1});
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  CHECK(y.to_vector<double>() == std::vector<double>{1.5, 5.5, 11.5, 28.5});
}

TEST_CASE("conv2d matches a direct convolution") {
  Generator gen(31);
  for (const ConvOptionCase& c : conv_option_cases()) {
    INFO(c.name);
    Tensor x = Tensor::randn({c.batch, c.in_channels, c.height, c.width}, gen, 0, 1, DType::f64);
    Tensor w = Tensor::randn({c.out_channels, c.in_channels / c.options.groups, c.kernel_h, c.kernel_w}, gen, 0, 1,
                             DType::f64);
    Tensor b = c.bias ? Tensor::randn({c.out_channels}, gen, 0, 1, DType::f64) : Tensor();
    Tensor y = conv2d(x, w, b, c.options);
    CHECK(y.shape() == Shape{c.batch, c.out_channels,
                             out_size(c.height, c.kernel_h, c.options.stride_h, c.options.pad_h, c.options.dilation_h),
                             out_size(c.width, c.kernel_w, c.options.stride_w, c.options.pad_w, c.options.dilation_w)});
    check_close(y.to_vector<double>(), naive_conv2d(x, w, b, c.options));
  }
}

// The blas_core_types ctest entry reruns this suite and test_linalg.cpp under each OpenBLAS
// core type the CPU can execute, where the kernels round differently (test_linalg.cpp).
TEST_CASE("conv2d and conv_transpose2d: the same bits for any thread count") {
  // Samples (forward, dx) and input-channel chunks (dw) on separate threads, a batch of one
  // whose products gemm cuts into blocks, groups, 1x1, depthwise; float64 (also checked
  // against the loops) and float32, whose BLAS kernels differ. The bits must not depend on the
  // thread count: on AVX-512 OpenBLAS (SkylakeX, Cooperlake: a Zen 4 EPYC) the weight gradient
  // once differed between 1 and 2 threads, the channels being split by the thread count.
  struct Big { const char* name; Shape x, w; Conv2dOptions options; };
  for (const Big& c : {Big{"3x3 groups 2", {3, 16, 31, 29}, {32, 8, 3, 3}, {.pad_h = 1, .pad_w = 1, .groups = 2}},
                       Big{"1x1", {4, 32, 19, 23}, {48, 32, 1, 1}, {}},
                       Big{"batch of one, 3x3", {1, 40, 37, 35}, {56, 40, 3, 3}, {.pad_h = 1, .pad_w = 1}},
                       Big{"RGB input, 7x7 stride 2", {2, 3, 61, 59}, {24, 3, 7, 7}, {.stride_h = 2, .stride_w = 2, .pad_h = 3, .pad_w = 3}},
                       Big{"depthwise strided dilated", {6, 24, 45, 43}, {48, 1, 3, 3},
                           {.stride_h = 2, .stride_w = 2, .pad_h = 2, .pad_w = 1, .dilation_h = 2, .dilation_w = 2,
                            .groups = 24}}}) {
    // Our kernels' promise; oneDNN's weight gradient depends on the thread count (test_dnnl.cpp).
    cpu::DnnlScope ours(false);
    for (DType dtype : {DType::f64, DType::f32}) {
      INFO(std::string(c.name) << (dtype == DType::f64 ? ", float64" : ", float32"));
      Generator gen(32);
      Tensor x = Tensor::randn(c.x, gen, 0, 1, dtype), w = Tensor::randn(c.w, gen, 0, 1, dtype);
      // conv2d forward, dx, dw; conv_transpose2d of the same geometry reads them backwards
      // (its forward is conv2d's dx, its backward conv2d's forward and dw).
      TensorList out = check_same_bits_for_thread_counts(
          [&] {
            Tensor xg = x.detach().set_requires_grad(), wg = w.detach().set_requires_grad();
            Tensor y = conv2d(xg, wg, Tensor(), c.options);
            y.backward(tanh(y.detach()));
            Tensor yg = y.detach().set_requires_grad(), wt = w.detach().set_requires_grad();
            Tensor t = conv_transpose2d(yg, wt, Tensor(), transpose_options(c.options));
            t.backward(tanh(t.detach()));
            return TensorList{y, xg.grad(), wg.grad(), t, yg.grad(), wt.grad()};
          },
          "y, dx, dw, transposed y, its dx, its dw");
      if (dtype == DType::f64) {
        Tensor gy = tanh(out[0]);
        check_close(out[0].to_vector<double>(), naive_conv2d(x, w, Tensor(), c.options));
        check_close(out[1].to_vector<double>(), naive_conv_transpose2d(gy, w, Tensor(), transpose_options(c.options)));
        check_close(out[2].to_vector<double>(), naive_conv2d_weight_grad(x, gy, w.shape(), c.options));
      }
    }
  }
}

TEST_CASE("conv_transpose2d matches scattering loops and is conv2d's adjoint") {
  Generator gen(33);
  for (const ConvOptionCase& c : conv_option_cases()) {
    INFO(c.name);
    // conv2d maps x [N, C, H, W] to y; conv_transpose2d with the same weight maps y's shape back.
    Tensor w = Tensor::randn({c.out_channels, c.in_channels / c.options.groups, c.kernel_h, c.kernel_w}, gen, 0, 1,
                             DType::f64);
    Tensor x = Tensor::randn({c.batch, c.in_channels, c.height, c.width}, gen, 0, 1, DType::f64);
    Tensor cx = conv2d(x, w, Tensor(), c.options);
    Tensor y = Tensor::randn(cx.shape(), gen, 0, 1, DType::f64);
    // Output padding recovers the rows and columns a strided conv2d dropped.
    int64_t oph = (c.height + 2 * c.options.pad_h - c.options.dilation_h * (c.kernel_h - 1) - 1) % c.options.stride_h;
    int64_t opw = (c.width + 2 * c.options.pad_w - c.options.dilation_w * (c.kernel_w - 1) - 1) % c.options.stride_w;
    ConvTranspose2dOptions t = transpose_options(c.options, oph, opw);
    Tensor ty = conv_transpose2d(y, w, Tensor(), t);
    REQUIRE(ty.shape() == x.shape());
    CHECK(dot(cx, y) == doctest::Approx(dot(x, ty)).epsilon(1e-12));
    check_close(ty.to_vector<double>(), naive_conv_transpose2d(y, w, Tensor(), t));
    Tensor b = Tensor::randn({c.in_channels}, gen, 0, 1, DType::f64);
    check_close(conv_transpose2d(y, w, b, t).to_vector<double>(), naive_conv_transpose2d(y, w, b, t));
  }
}

TEST_CASE("conv_transpose2d by hand, with output padding") {
  // Stride 2 spreads the pixels apart; a 1x1 kernel of 2 scales them.
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor w = Tensor::full({1, 1, 1, 1}, 2, DType::f64);
  Tensor y = conv_transpose2d(x, w, Tensor(), {.stride_h = 2, .stride_w = 2, .output_padding_h = 1});
  CHECK(y.shape() == Shape{1, 1, 4, 3});
  CHECK(y.to_vector<double>() == std::vector<double>{2, 0, 4, 0, 0, 0, 6, 0, 8, 0, 0, 0});
  // Output padding smaller than the dilation (not the stride) is allowed too.
  Tensor w3 = Tensor::ones({1, 1, 3, 3}, DType::f64);
  ConvTranspose2dOptions o{.dilation_h = 2, .dilation_w = 2, .output_padding_h = 1, .output_padding_w = 1};
  Tensor z = conv_transpose2d(x, w3, Tensor(), o);
  CHECK(z.shape() == Shape{1, 1, 7, 7});
  check_close(z.to_vector<double>(), naive_conv_transpose2d(x, w3, Tensor(), o));
}

TEST_CASE("conv argument errors name the op and the shapes") {
  Tensor x = Tensor::ones({2, 3, 8, 8});
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::ones({16, 4, 3, 3})),
                       "conv2d: input [2, 3, 8, 8] has 3 channels, weight [16, 4, 3, 3] expects 4 (groups 1)", OpError);
  CHECK_THROWS_WITH_AS(conv2d(Tensor::ones({2, 4, 8, 8}), Tensor::ones({3, 2, 3, 3}), Tensor(), {.groups = 2}),
                       "conv2d: groups 2 does not divide the 3 output channels of weight [3, 2, 3, 3]", OpError);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::ones({4, 3, 5, 5}), Tensor(), {.pad_h = 0, .pad_w = 1, .dilation_h = 2}),
                       "conv2d: kernel 5x5 (dilation 2x1) is larger than the padded input 8x10 (input [2, 3, 8, 8], "
                       "weight [4, 3, 5, 5], padding 0x1)",
                       OpError);
  CHECK_THROWS_WITH_AS(conv2d(Tensor::ones({3, 8, 8}), Tensor::ones({4, 3, 3, 3})),
                       "conv2d: input must be 4-d [N, C, H, W], got [3, 8, 8]", OpError);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::ones({4, 3, 3})), "conv2d: weight must be 4-d, got [4, 3, 3]", OpError);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::ones({4, 3, 3, 3}), Tensor::ones({3})),
                       "conv2d: bias [3] does not match weight [4, 3, 3, 3] (expected [4])", OpError);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::ones({4, 3, 3, 3}), Tensor(), {.stride_h = 0}),
                       "conv2d: stride 0x1 must be positive", OpError);
  CHECK_THROWS_AS(conv2d(x, Tensor::ones({4, 3, 3, 3}, DType::f64)), OpError);

  CHECK_THROWS_WITH_AS(conv_transpose2d(x, Tensor::ones({4, 2, 3, 3})),
                       "conv_transpose2d: input [2, 3, 8, 8] has 3 channels, weight [4, 2, 3, 3] expects 4", OpError);
  CHECK_THROWS_WITH_AS(conv_transpose2d(x, Tensor::ones({3, 2, 3, 3}), Tensor(), {.groups = 2}),
                       "conv_transpose2d: groups 2 does not divide the 3 input channels of weight [3, 2, 3, 3]",
                       OpError);
  CHECK_THROWS_WITH_AS(conv_transpose2d(x, Tensor::ones({3, 2, 3, 3}), Tensor(), {.stride_h = 2, .output_padding_h = 2}),
                       "conv_transpose2d: output padding 2x0 must be smaller than the stride 2x1 or the dilation 1x1",
                       OpError);
  CHECK_THROWS_WITH_AS(conv_transpose2d(Tensor::ones({1, 3, 1, 1}), Tensor::ones({3, 2, 1, 1}), Tensor(), {.pad_h = 1}),
                       "conv_transpose2d: output size -1x1 is not positive (input [1, 3, 1, 1], weight [3, 2, 1, 1], "
                       "padding 1x0)",
                       OpError);
  CHECK_THROWS_WITH_AS(conv_transpose2d(x, Tensor::ones({3, 2, 3, 3}), Tensor::ones({3})),
                       "conv_transpose2d: bias [3] does not match weight [3, 2, 3, 3] (expected [2])", OpError);
}

TEST_CASE("conv in float32 agrees with float64") {
  Generator gen(34);
  auto rel_close = [](const Tensor& f32, const Tensor& f64) {
    auto a = f32.to_vector<double>(), b = f64.to_vector<double>();
    double scale = 0, err = 0;
    for (size_t i = 0; i < b.size(); ++i) scale = std::max(scale, std::abs(b[i])), err = std::max(err, std::abs(a[i] - b[i]));
    CHECK(err <= 1e-4 * scale);
  };
  for (const ConvOptionCase& c : conv_option_cases()) {
    INFO(c.name);
    Tensor x = Tensor::randn({c.batch, c.in_channels, c.height, c.width}, gen, 0, 1, DType::f64);
    Tensor w = Tensor::randn({c.out_channels, c.in_channels / c.options.groups, c.kernel_h, c.kernel_w}, gen, 0, 1,
                             DType::f64);
    Tensor b = Tensor::randn({c.out_channels}, gen, 0, 1, DType::f64);
    Tensor y = conv2d(x, w, b, c.options);
    rel_close(conv2d(x.to(DType::f32), w.to(DType::f32), b.to(DType::f32), c.options), y);
    ConvTranspose2dOptions t = transpose_options(c.options);
    rel_close(conv_transpose2d(y.to(DType::f32), w.to(DType::f32), Tensor(), t), conv_transpose2d(y, w, Tensor(), t));
    // And the gradients.
    Tensor x32 = x.to(DType::f32).set_requires_grad(), w32 = w.to(DType::f32).set_requires_grad();
    Tensor x64 = x.detach().set_requires_grad(), w64 = w.detach().set_requires_grad();
    conv2d(x32, w32, Tensor(), c.options).backward(y.to(DType::f32));
    conv2d(x64, w64, Tensor(), c.options).backward(y);
    rel_close(x32.grad(), x64.grad());
    rel_close(w32.grad(), w64.grad());
  }
}

TEST_CASE("conv2d skips the input gradient when the input needs none") {
  Generator gen(35);
  Tensor x = Tensor::randn({2, 3, 5, 5}, gen, 0, 1, DType::f64);  // data: no grad
  Tensor w = random_input({2, 3, 3, 3}, gen), b = random_input({2}, gen);
  sum(conv2d(x, w, b)).backward();
  CHECK(!x.grad().defined());
  CHECK(w.grad().shape() == w.shape());
  // d sum / d b = N * OH * OW per channel.
  CHECK(b.grad().to_vector<double>() == std::vector<double>{18, 18});
}

// The finite-difference gradient checks of the family: its op-case table (tests/op_cases/conv.cpp).
TEST_CASE("gradcheck: the conv table") { CHECK(testing::check_gradient_cases(testing::conv_cases()) > 0); }
