#include "core/ops/conv.h"

#include "core/cpu/conv.h"
#include "core/ops/common.h"
#include "core/ops/reduce.h"
#include "cuda/conv.h"

namespace mmfuse {

namespace {

using cpu::ConvGeometry;

std::string hw(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

// Checks shared by conv2d and conv_transpose2d; fills the kernel and option fields of g.
template <typename Options>
ConvGeometry check_common(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                          const Options& o) {
  ops::check_compatible(op, x, weight);
  ops::check_floating(op, x);
  if (bias.defined()) ops::check_compatible(op, x, bias);
  MMF_CHECK(x.dim() == 4, OpError, op, ": input must be 4-d [N, C, H, W], got ", shape_str(x.shape()));
  MMF_CHECK(weight.dim() == 4, OpError, op, ": weight must be 4-d, got ", shape_str(weight.shape()));
  MMF_CHECK(o.stride_h >= 1 && o.stride_w >= 1, OpError, op, ": stride ", hw(o.stride_h, o.stride_w),
            " must be positive");
  MMF_CHECK(o.dilation_h >= 1 && o.dilation_w >= 1, OpError, op, ": dilation ", hw(o.dilation_h, o.dilation_w),
            " must be positive");
  MMF_CHECK(o.pad_h >= 0 && o.pad_w >= 0, OpError, op, ": padding ", hw(o.pad_h, o.pad_w), " must be >= 0");
  MMF_CHECK(o.groups >= 1, OpError, op, ": groups ", o.groups, " must be positive");
  ConvGeometry g;
  g.batch = x.size(0);
  g.kernel_h = weight.size(2), g.kernel_w = weight.size(3);
  g.stride_h = o.stride_h, g.stride_w = o.stride_w, g.pad_h = o.pad_h, g.pad_w = o.pad_w;
  g.dilation_h = o.dilation_h, g.dilation_w = o.dilation_w, g.groups = o.groups;
  return g;
}

void check_bias(const char* op, const Tensor& bias, const Tensor& weight, int64_t channels) {
  if (!bias.defined()) return;
  MMF_CHECK(bias.shape() == Shape{channels}, OpError, op, ": bias ", shape_str(bias.shape()), " does not match weight ",
            shape_str(weight.shape()), " (expected [", channels, "])");
}

// out = conv_forward(image, weight), image = conv_backward_data(out, weight): the two
// directions of one geometry, for conv2d and (swapped) conv_transpose2d.
Tensor correlate(const ConvGeometry& g, const Tensor& image, const Tensor& weight) {
  Tensor out = Tensor::empty({g.batch, g.out_channels, g.out_height, g.out_width}, image.dtype(), image.device());
  ops::dispatch_floating("conv", image.dtype(), [&]<typename T>() {
    MMF_KERNEL(image, conv_forward, g, image.data<T>(), weight.data<T>(), out.data<T>());
  });
  return out;
}

Tensor correlate_adjoint(const ConvGeometry& g, const Tensor& out, const Tensor& weight) {
  Tensor image = Tensor::empty({g.batch, g.channels, g.height, g.width}, out.dtype(), out.device());
  ops::dispatch_floating("conv", out.dtype(), [&]<typename T>() {
    MMF_KERNEL(out, conv_backward_data, g, out.data<T>(), weight.data<T>(), image.data<T>());
  });
  return image;
}

Tensor weight_gradient(const ConvGeometry& g, const Tensor& image, const Tensor& out, const Shape& weight_shape) {
  Tensor dw = Tensor::empty(weight_shape, image.dtype(), image.device());
  ops::dispatch_floating("conv", image.dtype(), [&]<typename T>() {
    MMF_KERNEL(image, conv_backward_weight, g, image.data<T>(), out.data<T>(), dw.data<T>());
  });
  return dw;
}

void add_bias(const Tensor& y, const Tensor& bias) {
  if (!bias.defined()) return;
  ops::dispatch_floating("conv", y.dtype(), [&]<typename T>() {
    MMF_KERNEL(y, add_channel_bias, y.data<T>(), bias.data<T>(), y.size(0), y.size(1), y.size(2) * y.size(3));
  });
}

TensorList conv_inputs(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  TensorList inputs = {x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return inputs;
}

// The forward and the backward node shared by conv2d and conv_transpose2d. In conv2d's terms
// (geometry g: image -> correlation), conv2d correlates x and its data gradient is the adjoint;
// conv_transpose2d is the adjoint, its data gradient the correlation, and its input plays the
// correlation's role in the weight gradient.
Tensor run_conv(const char* op, const ConvGeometry& g, const Tensor& x, const Tensor& weight, const Tensor& bias,
                bool transposed) {
  Tensor y = transposed ? correlate_adjoint(g, x, weight) : correlate(g, x, weight);
  add_bias(y, bias);
  bool gx = x.requires_grad(), gw = weight.requires_grad(), gb = bias.defined() && bias.requires_grad();
  autograd::record(op, conv_inputs(x, weight, bias), {y},
                   [g, transposed, x = gw ? x.detach() : Tensor(), w = gx ? weight.detach() : Tensor(),
                    w_shape = weight.shape(), gx, gw, gb, has_bias = bias.defined()](const TensorList& grads) -> TensorList {
    const Tensor& dy = grads[0];
    Tensor dx, dw;
    if (gx) dx = transposed ? correlate(g, dy, w) : correlate_adjoint(g, dy, w);
    if (gw) dw = transposed ? weight_gradient(g, dy, x, w_shape) : weight_gradient(g, x, dy, w_shape);
    TensorList out = {dx, dw};
    if (has_bias) out.push_back(gb ? sum(dy, {0, 2, 3}) : Tensor());
    return out;
  });
  return y;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  const char* op = "conv2d";
  ConvGeometry g = check_common(op, x, weight, bias, options);
  g.channels = x.size(1), g.height = x.size(2), g.width = x.size(3);
  g.out_channels = weight.size(0);
  MMF_CHECK(weight.size(1) * g.groups == g.channels, OpError, "conv2d: input ", shape_str(x.shape()), " has ",
            g.channels, " channels, weight ", shape_str(weight.shape()), " expects ", weight.size(1) * g.groups,
            " (groups ", g.groups, ")");
  MMF_CHECK(g.out_channels % g.groups == 0, OpError, "conv2d: groups ", g.groups, " does not divide the ",
            g.out_channels, " output channels of weight ", shape_str(weight.shape()));
  int64_t span_h = g.dilation_h * (g.kernel_h - 1) + 1, span_w = g.dilation_w * (g.kernel_w - 1) + 1;
  MMF_CHECK(span_h <= g.height + 2 * g.pad_h && span_w <= g.width + 2 * g.pad_w, OpError, "conv2d: kernel ",
            hw(g.kernel_h, g.kernel_w), " (dilation ", hw(g.dilation_h, g.dilation_w), ") is larger than the padded input ",
            hw(g.height + 2 * g.pad_h, g.width + 2 * g.pad_w), " (input ", shape_str(x.shape()), ", weight ",
            shape_str(weight.shape()), ", padding ", hw(g.pad_h, g.pad_w), ")");
  check_bias(op, bias, weight, g.out_channels);
  g.out_height = (g.height + 2 * g.pad_h - span_h) / g.stride_h + 1;
  g.out_width = (g.width + 2 * g.pad_w - span_w) / g.stride_w + 1;

  return run_conv(op, g, x, weight, bias, /*transposed=*/false);
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const ConvTranspose2dOptions& options) {
  const char* op = "conv_transpose2d";
  // In conv2d's terms the roles swap: this op's output is the image, its input the correlation.
  ConvGeometry g = check_common(op, x, weight, bias, options);
  g.out_channels = x.size(1), g.out_height = x.size(2), g.out_width = x.size(3);
  MMF_CHECK(weight.size(0) == g.out_channels, OpError, "conv_transpose2d: input ", shape_str(x.shape()), " has ",
            g.out_channels, " channels, weight ", shape_str(weight.shape()), " expects ", weight.size(0));
  MMF_CHECK(g.out_channels % g.groups == 0, OpError, "conv_transpose2d: groups ", g.groups, " does not divide the ",
            g.out_channels, " input channels of weight ", shape_str(weight.shape()));
  int64_t oph = options.output_padding_h, opw = options.output_padding_w;
  MMF_CHECK(oph >= 0 && opw >= 0 && (oph < g.stride_h || oph < g.dilation_h) && (opw < g.stride_w || opw < g.dilation_w),
            OpError, "conv_transpose2d: output padding ", hw(oph, opw), " must be smaller than the stride ",
            hw(g.stride_h, g.stride_w), " or the dilation ", hw(g.dilation_h, g.dilation_w));
  g.channels = weight.size(1) * g.groups;
  g.height = (g.out_height - 1) * g.stride_h - 2 * g.pad_h + g.dilation_h * (g.kernel_h - 1) + oph + 1;
  g.width = (g.out_width - 1) * g.stride_w - 2 * g.pad_w + g.dilation_w * (g.kernel_w - 1) + opw + 1;
  MMF_CHECK(g.out_height >= 1 && g.out_width >= 1 && g.height >= 1 && g.width >= 1, OpError,
            "conv_transpose2d: output size ", hw(g.height, g.width), " is not positive (input ", shape_str(x.shape()),
            ", weight ", shape_str(weight.shape()), ", padding ", hw(g.pad_h, g.pad_w), ")");
  check_bias(op, bias, weight, g.channels);

  return run_conv(op, g, x, weight, bias, /*transposed=*/true);
}

}  // namespace mmfuse
