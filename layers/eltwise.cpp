// Eltwise (Caffe): elementwise over two or more bottoms of one shape.
//   SUM  Σ coeff_i · x_i (coeff: one per bottom, default all 1)
//   PROD Π x_i
//   MAX  max_i x_i, as max(a, b) = (a + b + |a - b|) / 2; at exact ties the gradient is split
//        evenly between the tied bottoms (Caffe gives it all to the first).
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class EltwiseLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, -1, 1, 1}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().eltwise_param();
    for (size_t i = 1; i < bottoms.size(); ++i)
      if (bottoms[i] != bottoms[0])
        fail("bottoms must have one shape, got ", shape_str(bottoms[0]), " and ", shape_str(bottoms[i]), " (bottom ", i,
             ")");
    if (p.coeff_size() > 0 && p.operation() != proto::EltwiseParameter::SUM) fail("coeff applies to SUM only");
    if (p.coeff_size() > 0 && p.coeff_size() != static_cast<int>(bottoms.size()))
      fail(p.coeff_size(), " coeff values for ", bottoms.size(), " bottoms (give one per bottom)");
    return {bottoms[0]};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().eltwise_param();
    Tensor y;
    for (size_t i = 0; i < bottoms.size(); ++i) {
      const Tensor& x = bottoms[i];
      switch (p.operation()) {
        case proto::EltwiseParameter::SUM: {
          Tensor term = p.coeff_size() > 0 && p.coeff(static_cast<int>(i)) != 1.f ? x * double(p.coeff(int(i))) : x;
          y = i == 0 ? term : y + term;
          break;
        }
        case proto::EltwiseParameter::PROD: y = i == 0 ? x : y * x; break;
        case proto::EltwiseParameter::MAX: y = i == 0 ? x : (y + x + abs(y - x)) * 0.5; break;
      }
    }
    return {y};
  }
};

}  // namespace
MMF_REGISTER_LAYER(Eltwise, EltwiseLayer)
}  // namespace mmfuse
