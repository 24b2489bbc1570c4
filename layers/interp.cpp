// Interp (the Interp layer of DeepLab's and PSPNet's Caffe, numerics of
// torch.nn.functional.interpolate): resizes a [N, C, H, W] bottom. The output size, by
// DeepLab's rules on the input size after cropping by pad_beg/pad_end (which must be <= 0:
// negative values crop, H_eff = H + pad_beg + pad_end):
//   shrink_factor s only:        out = (H_eff - 1) / s + 1 (integer division)
//   zoom_factor z only:          out = H_eff + (H_eff - 1)(z - 1) = (H_eff - 1) z + 1
//   height and width:            those
//   shrink_factor and zoom_factor: shrink first, then zoom
//   a second bottom (any rank >= 2): its last two dims (e.g. a label [N, H, W]); it gives only
//                                its shape (no gradient flows to it)
// These are the corner-aligned sizes of DeepLab (its kernel is align_corners = true).
// interp_param { height width zoom_factor shrink_factor pad_beg pad_end
//   align_corners (true, DeepLab's; false: PyTorch's default half-pixel mapping)
//   mode (BILINEAR | NEAREST: PyTorch's 'nearest', which ignores align_corners) }.
// 1 or 2 bottoms, 1 top; no parameters.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class InterpLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {1, 2, 1, 1}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().interp_param();
    const Shape& x = bottoms[0];
    if (x.size() != 4) fail("expects a [N, C, H, W] bottom, got ", shape_str(x));
    if (p.pad_beg() > 0 || p.pad_end() > 0)
      fail("pad_beg and pad_end must be <= 0 (they crop; DeepLab's rule), got ", p.pad_beg(), " and ", p.pad_end());
    bool zoom = p.has_zoom_factor(), shrink = p.has_shrink_factor(), size = p.has_height() || p.has_width();
    if (zoom && p.zoom_factor() < 1) fail("zoom_factor must be >= 1, got ", p.zoom_factor());
    if (shrink && p.shrink_factor() < 1) fail("shrink_factor must be >= 1, got ", p.shrink_factor());
    if (size && (!p.has_height() || !p.has_width() || p.height() < 1 || p.width() < 1))
      fail("height and width go together and must be positive, got ", p.height(), "x", p.width());
    if (size && (zoom || shrink)) fail("give height/width or zoom_factor/shrink_factor, not both");
    if (bottoms.size() == 2) {
      if (size || zoom || shrink)
        fail("with a second bottom the size is its last two dims: give no height/width/zoom_factor/shrink_factor");
      if (bottoms[1].size() < 2) fail("the second bottom needs at least 2 dims, got ", shape_str(bottoms[1]));
    } else if (!size && !zoom && !shrink) {
      fail("give height and width, zoom_factor, shrink_factor, or a second bottom for the output size");
    }
    int64_t h = x[2] + p.pad_beg() + p.pad_end(), w = x[3] + p.pad_beg() + p.pad_end();
    if (h < 1 || w < 1) fail("pad_beg ", p.pad_beg(), " and pad_end ", p.pad_end(), " crop all of ", shape_str(x));
    auto [oh, ow] = out_size(h, w, bottoms.size() == 2 ? &bottoms[1] : nullptr);
    return {{x[0], x[1], oh, ow}};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().interp_param();
    Tensor x = bottoms[0];
    if (p.pad_beg() != 0 || p.pad_end() != 0)
      x = crop(x, {0, 0, -p.pad_beg(), -p.pad_beg()},
               {x.size(0), x.size(1), x.size(2) + p.pad_beg() + p.pad_end(), x.size(3) + p.pad_beg() + p.pad_end()});
    Shape ref = bottoms.size() == 2 ? bottoms[1].shape() : Shape{};
    auto [oh, ow] = out_size(x.size(2), x.size(3), bottoms.size() == 2 ? &ref : nullptr);
    if (p.mode() == proto::InterpParameter::NEAREST) return {upsample_nearest(x, oh, ow)};
    return {upsample_bilinear(x, oh, ow, p.align_corners())};
  }

 private:
  // DeepLab's output size for an (already cropped) input of h x w.
  std::pair<int64_t, int64_t> out_size(int64_t h, int64_t w, const Shape* ref) const {
    const auto& p = layer_param().interp_param();
    if (ref) return {(*ref)[ref->size() - 2], (*ref)[ref->size() - 1]};
    if (p.has_height()) return {p.height(), p.width()};
    if (p.has_shrink_factor()) {
      h = (h - 1) / p.shrink_factor() + 1;
      w = (w - 1) / p.shrink_factor() + 1;
    }
    if (p.has_zoom_factor()) {
      h = (h - 1) * p.zoom_factor() + 1;
      w = (w - 1) * p.zoom_factor() + 1;
    }
    return {h, w};
  }
};

}  // namespace
MMF_REGISTER_LAYER(Interp, InterpLayer)
}  // namespace mmfuse
