// Input (Caffe): tops fed from outside. input_param { shape { dim: ... } } gives one shape per
// top, or one shape for all tops. Net::forward takes the tensors by top name.
#include "core/layer.h"

namespace mmfuse {
namespace {

class InputLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {0, 0, 1, -1}; }
  bool is_input() const override { return true; }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext&) override {
    const auto& p = layer_param().input_param();
    int tops = layer_param().top_size();
    if (p.shape_size() != 1 && p.shape_size() != tops)
      fail("input_param has ", p.shape_size(), " shape(s) for ", tops, " tops (give one, or one per top)");
    std::vector<Shape> shapes;
    for (int t = 0; t < tops; ++t) {
      const auto& s = p.shape(p.shape_size() == 1 ? 0 : t);
      shapes.emplace_back(s.dim().begin(), s.dim().end());
      for (int64_t d : shapes.back())
        if (d <= 0) fail("input shape ", shape_str(shapes.back()), " has a dim <= 0 (every dim must be positive)");
    }
    return shapes;
  }

  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    TensorList tops;
    for (const auto& name : layer_param().top()) {
      static const std::map<std::string, Tensor> none;
      const auto& fed = ctx.inputs ? *ctx.inputs : none;
      auto it = fed.find(name);
      if (it == fed.end())
        throw Error("no tensor given for input '" + name + "' (pass it to Net::forward by name)");
      tops.push_back(it->second);
    }
    return tops;
  }
};

}  // namespace
MMF_REGISTER_LAYER(Input, InputLayer)
}  // namespace mmfuse
