// Deconvolution (Caffe's fields, torch.nn.functional.conv_transpose2d's numerics): the
// transpose of Convolution, for learned upsampling. The same convolution_param fields as
// Convolution plus output_padding (mmfuse, PyTorch's; 0), with
// OH = (H - 1) stride - 2 pad + dilation (kh - 1) + output_padding + 1.
// Parameters: weight [C_in, O/group, kh, kw] (Caffe's and PyTorch's layout), bias [O].
// Fillers as Convolution's (a "bilinear" weight_filler gives Caffe's fixed upsampling kernel).
#include "core/layer.h"
#include "core/ops.h"
#include "layers/conv_params.h"

namespace mmfuse {
namespace {

class DeconvolutionLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext& ctx) override {
    const auto& p = layer_param().convolution_param();
    const Shape& x = bottoms[0];
    geo_ = layers::read_conv_geometry(p, x, [this](auto&&... a) { fail(a...); });
    int64_t out = p.num_output(), groups = p.group(), channels = x[1], op = p.output_padding();
    if (op >= std::max(geo_.stride_h, geo_.dilation_h) || op >= std::max(geo_.stride_w, geo_.dilation_w))
      fail("output_padding ", op, " must be smaller than the stride or the dilation");
    int64_t oh = (x[2] - 1) * geo_.stride_h - 2 * geo_.pad_h + geo_.dilation_h * (geo_.kernel_h - 1) + op + 1;
    int64_t ow = (x[3] - 1) * geo_.stride_w - 2 * geo_.pad_w + geo_.dilation_w * (geo_.kernel_w - 1) + op + 1;
    if (oh < 1 || ow < 1) fail("pad ", geo_.pad_h, "x", geo_.pad_w, " leaves an empty output for ", shape_str(x));
    Shape w{channels, out / groups, geo_.kernel_h, geo_.kernel_w};
    int64_t fan_in = fan_in_of(w), fan_out = fan_out_of(w);
    add_param(ctx, "weight", w, layers::weight_filler_or_default(p.has_weight_filler(), p.weight_filler()), fan_in,
              fan_out);
    if (p.bias_term())
      add_param(ctx, "bias", {out}, layers::weight_filler_or_default(p.has_bias_filler(), p.bias_filler()), fan_in,
                fan_out);
    return {{x[0], out, oh, ow}};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().convolution_param();
    int64_t op = p.output_padding();
    ConvTranspose2dOptions o{geo_.stride_h,   geo_.stride_w,   geo_.pad_h, geo_.pad_w, geo_.dilation_h,
                             geo_.dilation_w, p.group(),       op,         op};
    return {conv_transpose2d(bottoms[0], param(0), p.bias_term() ? param(1) : Tensor(), o)};
  }

 private:
  layers::ConvGeometry geo_;
};

}  // namespace
MMF_REGISTER_LAYER(Deconvolution, DeconvolutionLayer)
}  // namespace mmfuse
