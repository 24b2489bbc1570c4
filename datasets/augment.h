// Paired augmentation: one geometric plan (scale, pad, crop, flip) drawn once per sample and
// applied identically to every modality and to the label, so that they stay aligned pixel for
// pixel. Host side, float CHW planes.
#pragma once
#include <cstdint>
#include <vector>

#include "core/random.h"

namespace mmfuse::datasets {

struct AugmentSettings {
  double scale_min = 1, scale_max = 1;
  int crop_height = 0, crop_width = 0;  // 0: no crop (the whole scaled image)
  bool mirror = false;
  bool pad_to_crop = true;
  int min_short_side = 0;
};

// Where each output pixel comes from. Output pixel (oy, ox) shows the pixel (py, px) of the
// scaled-and-padded image with py = oy + crop_y and px = (flip ? out_w - 1 - ox : ox) + crop_x;
// (py, px) inside [0, scaled_h) x [0, scaled_w) samples the source, else it is padding
// (padding goes to the bottom and the right, as in DeepLab's Caffe data layer).
struct AugmentPlan {
  int src_h = 0, src_w = 0;
  int scaled_h = 0, scaled_w = 0;
  int out_h = 0, out_w = 0;
  int crop_y = 0, crop_x = 0;
  bool flip = false;
};

// TRAIN (`gen` non-null): scale s = U[scale_min, scale_max] (one draw), raised so that the short
// side is at least min_short_side; scaled size = round(src * s); then crop offsets
// below(padded - crop + 1) for y then x, then flip = (mirror and U[0,1) < 0.5). The four draws are
// always made, in that order. TEST (`gen` null): s = 1 (raised for min_short_side), centre crop
// (offset floor((padded - crop) / 2)), no flip. Throws Error when the scaled image is smaller
// than the crop and pad_to_crop is false.
AugmentPlan plan_augmentation(const AugmentSettings& settings, int src_h, int src_w, Generator* gen);

// Applies the plan to one C x src_h x src_w plane stack, writing C x out_h x out_w to `dst`.
// Resampling matches F.interpolate(size=(scaled_h, scaled_w), align_corners=False): nearest
// src = min(floor(d * in / out), in - 1); bilinear src = max(0, (d + 0.5) * in / out - 0.5).
// Padding pixels get `pad_value`.
void apply_plan(const AugmentPlan& plan, const float* src, int channels, bool nearest, float pad_value, float* dst);

}  // namespace mmfuse::datasets
