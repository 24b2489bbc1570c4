// PixelShift (AsymFusion's pixel-shift fusion): bottoms (Y, A), both modality-stacked
// [M*N, C, H, W] of one shape, -> 1 top = Y + swap(PS(A)): modality m of the top is
// Y_m + PS(A_{(m+1) mod M}) for receivers, Y_m for the others. PS moves channel group q
// (g = floor(C / (groups+1)) channels) by `shift` pixels down, right, left, up (q = 0..3),
// zero fill, channels >= groups*g contribute nothing (pixel_shift_add).
// pixel_shift_param { modalities (2) groups (4) shift (1) receivers (empty: all) }. No parameters.
#include <set>

#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class PixelShiftLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, 2, 1, 1}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().pixel_shift_param();
    const Shape& y = bottoms[0];
    if (y.size() != 4) fail("expects [M*N, C, H, W] bottoms, got ", shape_str(y));
    if (bottoms[1] != y)
      fail("bottoms (Y, A) must have one shape, got ", shape_str(y), " and ", shape_str(bottoms[1]));
    if (p.modalities() < 1) fail("modalities must be >= 1, got ", p.modalities());
    if (y[0] % p.modalities() != 0)
      fail("batch of ", shape_str(y), " is not divisible by modalities = ", p.modalities());
    if (p.groups() < 1 || p.groups() > 32) fail("groups must be in [1, 32], got ", p.groups());
    if (p.shift() < 0) fail("shift must be >= 0, got ", p.shift());
    std::set<int> seen;
    for (int r : p.receivers()) {
      if (r < 0 || r >= p.modalities()) fail("receiver ", r, " out of range for modalities = ", p.modalities());
      if (!seen.insert(r).second) fail("receiver ", r, " listed twice");
    }
    return {y};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().pixel_shift_param();
    std::vector<int64_t> receivers(p.receivers().begin(), p.receivers().end());
    return {pixel_shift_add(bottoms[0], bottoms[1], p.modalities(), p.groups(), p.shift(), receivers)};
  }
};

}  // namespace
MMF_REGISTER_LAYER(PixelShift, PixelShiftLayer)
}  // namespace mmfuse
