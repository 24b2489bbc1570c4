// InnerProduct (Caffe's fields, torch.nn.functional.linear's numerics): the bottom is
// flattened from `axis` into K features, y = x W^T + b, top = the bottom's dims before axis
// then num_output. inner_product_param { num_output bias_term (true) weight_filler
// bias_filler axis (1) transpose (false) }. Parameters: weight [O, K] ([K, O] with transpose,
// as Caffe stores it then), bias [O]. Fillers as Convolution's (net defaults, else "pytorch"
// with fan_in K).
#include "core/layer.h"
#include "core/ops.h"
#include "layers/conv_params.h"

namespace mmfuse {
namespace {

class InnerProductLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext& ctx) override {
    const auto& p = layer_param().inner_product_param();
    const Shape& x = bottoms[0];
    if (!p.has_num_output() || p.num_output() < 1) fail("num_output must be given and positive");
    axis_ = canonical_axis(p.axis(), static_cast<int64_t>(x.size()));
    int64_t k = 1;
    for (size_t d = static_cast<size_t>(axis_); d < x.size(); ++d) k *= x[d];
    int64_t out = p.num_output();
    Shape w = p.transpose() ? Shape{k, out} : Shape{out, k};
    add_param(ctx, "weight", w, layers::weight_filler_or_default(p.has_weight_filler(), p.weight_filler()), k, out);
    if (p.bias_term())
      add_param(ctx, "bias", {out}, layers::weight_filler_or_default(p.has_bias_filler(), p.bias_filler()), k, out);
    Shape top(x.begin(), x.begin() + axis_);
    top.push_back(out);
    return {top};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().inner_product_param();
    const Tensor& x = bottoms[0];
    Shape top(x.shape().begin(), x.shape().begin() + axis_);
    Tensor flat = x.reshape({shape_numel(top), -1});
    Tensor bias = p.bias_term() ? param(1) : Tensor();
    Tensor y;
    if (p.transpose()) {
      y = matmul(flat, param(0));
      if (bias.defined()) y = y + bias;
    } else {
      y = linear(flat, param(0), bias);
    }
    top.push_back(p.num_output());
    return {y.reshape(top)};
  }

 private:
  int64_t axis_ = 1;
};

}  // namespace
MMF_REGISTER_LAYER(InnerProduct, InnerProductLayer)
}  // namespace mmfuse
