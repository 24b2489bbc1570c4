// Resizing ops on [N, C, H, W]: bilinear and nearest-neighbour upsampling (any output size,
// larger or smaller), matching torch.nn.functional.interpolate value for value.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace mmfuse {

// F.interpolate(x, size=(out_h, out_w), mode='bilinear', align_corners=align_corners).
// Source coordinate of output index d along an axis of `in` -> `out` elements:
//   align_corners = true:  src = d * (in - 1) / (out - 1)   (0 when out == 1)
//   align_corners = false: src = max(0, (d + 0.5) * in / out - 0.5)
// and the two neighbours floor(src) and floor(src) + 1 (clamped to in - 1) are blended with
// weights 1 - frac and frac. Coordinates are computed in the tensor's dtype, as PyTorch's CPU
// kernel does. The backward is the adjoint: each output gradient is scattered onto its four
// inputs, plane by plane in a fixed order (deterministic).
Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners);

// F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=align_corners) with
// recompute_scale_factor left unset: out = floor(in * scale) on both axes, and with
// align_corners = false the source coordinate uses 1 / scale instead of in / out (they differ
// when in * scale is not an integer: e.g. in 5, scale 1.5 -> out 7, step 1/1.5 not 5/7).
// With align_corners = true the scale is ignored, as in PyTorch. Recorded as upsample_bilinear.
Tensor upsample_bilinear_scale(const Tensor& x, double scale, bool align_corners);

// F.interpolate(x, size=(out_h, out_w), mode='nearest'): src = min(floor(d * in / out), in - 1)
// with the ratio and the product taken in float32 whatever the dtype (as PyTorch's
// nearest_idx), so that the same indices come out. The backward sums each output gradient
// into its source pixel.
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace mmfuse
