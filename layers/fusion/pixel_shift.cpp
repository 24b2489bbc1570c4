// PixelShift (AsymFusion's pixel-shift fusion): bottoms (Y, A), both modality-stacked
// [M*N, C, H, W] of one shape, -> 1 top = Y + swap(PS(A)): modality m of the top is
// Y_m + PS(A_{(m+1) mod M}) for receivers, Y_m for the others. PS moves channel group q
// (g = floor(C / (groups+1)) channels) by `shift` pixels down, right, left, up (q = 0..3),
// zero fill, channels >= groups*g contribute nothing (pixel_shift_add).
// pixel_shift_param { modalities (2) groups (4) shift (1) receivers (empty: all) }. No parameters.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class PixelShiftLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, 2, 1, 1}; }

  // The op's own checks, on the shapes.
  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().pixel_shift_param();
    try {
      return {pixel_shift_add_shape(bottoms[0], bottoms[1], p.modalities(), p.groups(), p.shift(), receivers())};
    } catch (const OpError& e) {
      fail(e.what());
    }
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().pixel_shift_param();
    return {pixel_shift_add(bottoms[0], bottoms[1], p.modalities(), p.groups(), p.shift(), receivers())};
  }

 private:
  std::vector<int64_t> receivers() const {
    const auto& r = layer_param().pixel_shift_param().receivers();
    return {r.begin(), r.end()};
  }
};

}  // namespace
MMF_REGISTER_LAYER(PixelShift, PixelShiftLayer)
}  // namespace mmfuse
