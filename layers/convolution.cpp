// Convolution (Caffe's fields, torch.nn.functional.conv2d's numerics): 2-d convolution of a
// [N, C, H, W] bottom. convolution_param { num_output kernel_size | kernel_h kernel_w,
// stride (1) | stride_h stride_w, pad (0) | pad_h pad_w, dilation (1), group (1),
// bias_term (true), weight_filler, bias_filler }. Fillers default to the net's `defaults`,
// else "pytorch" (PyTorch's Conv2d initialisation; Caffe's constant 0 would never train).
// Parameters: weight [O, C/group, kh, kw], bias [O].
#include "core/layer.h"
#include "core/ops.h"
#include "layers/conv_params.h"

namespace mmfuse {
namespace {

class ConvolutionLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext& ctx) override {
    const auto& p = layer_param().convolution_param();
    const Shape& x = bottoms[0];
    geo_ = layers::read_conv_geometry(p, x, [this](auto&&... a) { fail(a...); });
    int64_t out = p.num_output(), groups = p.group(), channels = x[1];
    int64_t oh = (x[2] + 2 * geo_.pad_h - geo_.dilation_h * (geo_.kernel_h - 1) - 1) / geo_.stride_h + 1;
    int64_t ow = (x[3] + 2 * geo_.pad_w - geo_.dilation_w * (geo_.kernel_w - 1) - 1) / geo_.stride_w + 1;
    if (x[2] + 2 * geo_.pad_h < geo_.dilation_h * (geo_.kernel_h - 1) + 1 ||
        x[3] + 2 * geo_.pad_w < geo_.dilation_w * (geo_.kernel_w - 1) + 1)
      fail("kernel ", geo_.kernel_h, "x", geo_.kernel_w, " (dilation ", geo_.dilation_h, "x", geo_.dilation_w,
           ") does not fit the padded input of ", shape_str(x));
    Shape w{out, channels / groups, geo_.kernel_h, geo_.kernel_w};
    int64_t fan_in = fan_in_of(w), fan_out = fan_out_of(w);
    add_param(ctx, "weight", w, layers::weight_filler_or_default(p.has_weight_filler(), p.weight_filler()), fan_in,
              fan_out);
    // The bias is filled with the weight's fans (PyTorch's bias bound is 1/sqrt(weight fan_in)).
    if (p.bias_term())
      add_param(ctx, "bias", {out}, layers::weight_filler_or_default(p.has_bias_filler(), p.bias_filler()), fan_in,
                fan_out);
    return {{x[0], out, oh, ow}};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    Conv2dOptions o{geo_.stride_h, geo_.stride_w, geo_.pad_h,      geo_.pad_w,
                    geo_.dilation_h, geo_.dilation_w, layer_param().convolution_param().group()};
    return {conv2d(bottoms[0], param(0), layer_param().convolution_param().bias_term() ? param(1) : Tensor(), o)};
  }

 private:
  layers::ConvGeometry geo_;
};

}  // namespace
MMF_REGISTER_LAYER(Convolution, ConvolutionLayer)
}  // namespace mmfuse
