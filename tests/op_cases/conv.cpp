// conv2d and conv_transpose2d (input, weight and bias gradients) for every option combination:
// stride, padding, dilation, groups, depthwise, 1x1, bias on and off, output padding; the
// gradient cases on 7x5 images, the parity cases on odd sizes up to 33 channels. Parity
// tolerances (docs/cuda.md): fp32 differs from the CPU only by summation order (1e-5
// relative); tests/cuda/test_cuda_conv.cpp reruns the table in tf32 (5e-3) and on the im2col
// fallback.
#include "tests/op_cases/conv.h"
#include "tests/op_cases/op_case.h"

namespace mmfuse::testing {

namespace {

constexpr double kFp32 = 1e-5;

ConvTranspose2dOptions transposed(const Conv2dOptions& o, int64_t output_padding_h = 0) {
  return {o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dilation_h, o.dilation_w, o.groups, output_padding_h, 0};
}

OpFn conv_fn(const Conv2dOptions& o, bool bias) {
  return [o, bias](const TensorList& t) { return conv2d(t[0], t[1], bias ? t[2] : Tensor(), o); };
}

OpFn transpose_fn(const ConvTranspose2dOptions& o, bool bias) {
  return [o, bias](const TensorList& t) { return conv_transpose2d(t[0], t[1], bias ? t[2] : Tensor(), o); };
}

}  // namespace

const std::vector<ConvOptionCase>& conv_option_cases() {
  static const std::vector<ConvOptionCase> cases = {
      {"plain 3x3", 1, 3, 7, 5, 4, 3, 3, {}, true},
      {"stride 2", 3, 2, 7, 5, 3, 3, 3, {.stride_h = 2, .stride_w = 2}, false},
      {"padding 1", 1, 3, 7, 5, 2, 3, 3, {.pad_h = 1, .pad_w = 1}, true},
      {"dilation 2", 3, 2, 7, 5, 3, 3, 2, {.dilation_h = 2, .dilation_w = 2}, true},
      {"groups 2", 3, 4, 7, 5, 6, 3, 3, {.pad_h = 1, .pad_w = 0, .groups = 2}, true},
      {"depthwise", 1, 3, 7, 5, 3, 3, 3, {.pad_h = 1, .pad_w = 1, .groups = 3}, false},
      {"depthwise x2", 3, 3, 5, 7, 6, 3, 1, {.groups = 3}, true},
      {"1x1", 3, 5, 3, 5, 3, 1, 1, {}, false},
      {"everything", 3, 4, 7, 5, 2, 2, 3,
       {.stride_h = 2, .stride_w = 1, .pad_h = 2, .pad_w = 1, .dilation_h = 1, .dilation_w = 2, .groups = 2}, true},
  };
  return cases;
}

OpTable conv_cases() {
  OpTable t{"conv", {}};
  // Gradient cases: conv_option_cases() (tests/op_cases/conv.h), each read backwards
  // (out_channels in) as a transposed convolution of half the size, with output padding where
  // strided.
  for (const ConvOptionCase& c : conv_option_cases()) {
    Shape w = {c.out_channels, c.in_channels / c.options.groups, c.kernel_h, c.kernel_w};
    std::vector<Arg> args = {in({c.batch, c.in_channels, c.height, c.width}), in(w)};
    if (c.bias) args.push_back(in({c.out_channels}));
    t.add("conv2d", c.name, args, conv_fn(c.options, c.bias)).grad_only();

    int64_t h = std::max<int64_t>(2, c.height / 2), wd = std::max<int64_t>(2, c.width / 2);
    std::vector<Arg> targs = {in({c.batch, c.out_channels, h, wd}), in(w)};
    if (c.bias) targs.push_back(in({c.in_channels}));
    t.add("conv_transpose2d", c.name, targs, transpose_fn(transposed(c.options, c.options.stride_h > 1 ? 1 : 0), c.bias))
        .grad_only();
  }

  // Parity cases: odd sizes, strides, padding, dilation, groups.
  Conv2dOptions plain, padded, strided, dilated, grouped, pointwise, depthwise;
  padded.pad_h = padded.pad_w = 1;
  strided.stride_h = 2, strided.stride_w = 3, strided.pad_h = 1, strided.pad_w = 2;
  dilated.dilation_h = 2, dilated.dilation_w = 3, dilated.pad_h = 2;
  grouped.groups = 3, grouped.pad_h = grouped.pad_w = 1;
  depthwise.groups = 5, depthwise.pad_h = depthwise.pad_w = 1;
  struct Large {
    const char* name;
    Shape x, w;
    Conv2dOptions o;
    bool bias;
  };
  const std::vector<Large> large = {
      {"plain", {2, 3, 7, 9}, {5, 3, 3, 3}, plain, true},           {"padded", {3, 5, 11, 13}, {7, 5, 3, 3}, padded, true},
      {"strided", {2, 3, 15, 17}, {4, 3, 5, 3}, strided, false},    {"dilated", {1, 2, 13, 19}, {3, 2, 3, 3}, dilated, true},
      {"groups 3", {2, 6, 9, 7}, {9, 2, 3, 3}, grouped, true},      {"1x1", {2, 33, 7, 5}, {17, 33, 1, 1}, pointwise, true},
      {"depthwise", {2, 5, 9, 9}, {5, 1, 3, 3}, depthwise, false},  {"1 pixel", {1, 1, 1, 1}, {1, 1, 1, 1}, plain, true}};
  for (const Large& c : large) {
    std::vector<Arg> args = {in(c.x), in(c.w)};
    if (c.bias) args.push_back(in({c.w[0]}));
    t.add("conv2d", std::string(c.name) + " " + shape_str(c.x) + " * " + shape_str(c.w), args, conv_fn(c.o, c.bias))
        .parity_only();
  }
  ConvTranspose2dOptions tplain, upsample, tgrouped;
  upsample.stride_h = upsample.stride_w = 2, upsample.pad_h = upsample.pad_w = 1;
  upsample.output_padding_h = 1;
  tgrouped.groups = 2, tgrouped.stride_h = 3, tgrouped.dilation_w = 2;
  struct LargeT {
    const char* name;
    Shape x, w;
    ConvTranspose2dOptions o;
    bool bias;
  };
  const std::vector<LargeT> large_t = {{"plain", {2, 3, 5, 7}, {3, 4, 3, 3}, tplain, true},
                                       {"upsample x2", {2, 5, 7, 9}, {5, 3, 4, 4}, upsample, true},
                                       {"groups 2", {1, 4, 5, 3}, {4, 3, 3, 3}, tgrouped, false}};
  for (const LargeT& c : large_t) {
    std::vector<Arg> args = {in(c.x), in(c.w)};
    if (c.bias) args.push_back(in({c.w[1] * c.o.groups}));
    t.add("conv_transpose2d", std::string(c.name) + " " + shape_str(c.x) + " * " + shape_str(c.w), args,
          transpose_fn(c.o, c.bias))
        .parity_only();
  }
  // Bench rows: a ResNet stage's 3x3 convolution and its x2 transposed upsampling.
  for (OpCase& c : t.cases) {
    if (c.op == "conv2d" && c.what.rfind("padded", 0) == 0) c.bench({{8, 64, 56, 56}, {64, 64, 3, 3}, {64}});
    if (c.op == "conv_transpose2d" && c.what.rfind("upsample", 0) == 0) c.bench({{8, 64, 28, 28}, {64, 32, 4, 4}, {32}});
  }
  for (OpCase& c : t.cases) c.parity(kFp32);
  return t;
}

}  // namespace mmfuse::testing
