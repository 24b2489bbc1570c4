// MMTM (Joze et al., CVPR 2020, "MMTM: Multimodal Transfer Module for CNN Fusion"), for M >= 2
// streams: bottoms X_m [N, C_m, ...] with any number and size of trailing dims (a plain [N, C_m]
// too), tops of the same shapes.
//   s_m = mean of X_m over its trailing dims                 [N, C_m]
//   z   = ReLU(W [s_1; ...; s_M] + b)                        [N, C_Z], C_Z = round(sum C_m / ratio)
//   e_m = W_m z + b_m                                        [N, C_m]
//   top_m = gate_scale * sigmoid(e_m) (.) X_m                (channel_gate, broadcast over trailing dims)
// mmtm_param { ratio (4) gate_scale (2) identity_init (false) weight_filler (pytorch) }.
// Parameters, in order: squeeze_weight [C_Z, sum C], squeeze_bias [C_Z], then per modality m:
// excite<m>_weight [C_m, C_Z], excite<m>_bias [C_m]. Initialised as PyTorch's nn.Linear
// (U(+-1/sqrt(fan_in)) for weight and bias, fan_in of the weight); weight_filler replaces the
// weights' filler (the biases keep PyTorch's);
// identity_init zeroes the excitation weights and biases, so with gate_scale 2 every top equals
// its bottom at init. Follows the paper (gate_scale 2, C_Z = sum C / 4), not the official code's
// master branch (gate 1, C_Z = sum C / 2); both are reachable through the fields.
#include <cmath>
#include <string>

#include "core/filler.h"
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class MMTMLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, -1, 2, -1}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext& ctx) override {
    const auto& p = layer_param().mmtm_param();
    if (layer_param().top_size() != static_cast<int>(bottoms.size()))
      fail("takes one top per bottom, got ", bottoms.size(), " bottoms and ", layer_param().top_size(), " tops");
    if (!(p.ratio() > 0) || !std::isfinite(p.ratio())) fail("ratio must be > 0, got ", p.ratio());
    if (!(p.gate_scale() > 0) || !std::isfinite(p.gate_scale())) fail("gate_scale must be > 0, got ", p.gate_scale());
    int64_t total = 0;
    for (size_t m = 0; m < bottoms.size(); ++m) {
      const Shape& x = bottoms[m];
      if (x.size() < 2) fail("bottom ", m, " must be [N, C, ...], got ", shape_str(x));
      if (x[0] != bottoms[0][0])
        fail("bottoms must have one batch size, got ", shape_str(bottoms[0]), " and ", shape_str(x), " (bottom ", m,
             ")");
      total += x[1];
    }
    int64_t width = static_cast<int64_t>(std::llround(static_cast<double>(total) / p.ratio()));
    if (width < 1) fail("the bottleneck width round(", total, " / ratio ", p.ratio(), ") is 0; lower the ratio");

    // PyTorch's nn.Linear: weight and bias both U(+-1/sqrt(fan_in)) with the weight's fan_in.
    auto linear_params = [&](const std::string& prefix, int64_t out, int64_t in, bool zero) {
      auto weight = p.has_weight_filler() ? p.weight_filler() : make_filler("pytorch");
      auto bias = make_filler("pytorch");
      if (zero) weight = bias = make_filler("constant", 0);
      add_param(ctx, prefix + "_weight", {out, in}, weight, in, out);
      add_param(ctx, prefix + "_bias", {out}, bias, in, out);
    };
    linear_params("squeeze", width, total, false);
    for (size_t m = 0; m < bottoms.size(); ++m)
      linear_params("excite" + std::to_string(m), bottoms[m][1], width, p.identity_init());
    return bottoms;
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().mmtm_param();
    TensorList squeezed;
    for (const Tensor& x : bottoms) squeezed.push_back(x.dim() == 2 ? x : global_avg_pool(x));
    Tensor z = relu(linear(concat(squeezed, 1), param(0), param(1)));
    TensorList tops;
    for (size_t m = 0; m < bottoms.size(); ++m) {
      Tensor e = linear(z, param(2 + 2 * m), param(3 + 2 * m));
      tops.push_back(channel_gate(bottoms[m], e, p.gate_scale()));
    }
    return tops;
  }
};

}  // namespace
MMF_REGISTER_LAYER(MMTM, MMTMLayer)
}  // namespace mmfuse
