#include "datasets/augment.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace mmfuse::datasets {

AugmentPlan plan_augmentation(const AugmentSettings& s, int src_h, int src_w, Generator* gen) {
  MMF_CHECK(src_h > 0 && src_w > 0, Error, "augmentation: empty image ", src_h, "x", src_w);
  AugmentPlan plan;
  plan.src_h = src_h;
  plan.src_w = src_w;
  double scale = 1;
  const double u_scale = gen ? gen->uniform() : 0;
  if (gen) scale = s.scale_min + (s.scale_max - s.scale_min) * u_scale;
  const int short_side = std::min(src_h, src_w);
  if (s.min_short_side > 0 && short_side * scale < s.min_short_side) scale = double(s.min_short_side) / short_side;
  plan.scaled_h = std::max(1, static_cast<int>(std::lround(src_h * scale)));
  plan.scaled_w = std::max(1, static_cast<int>(std::lround(src_w * scale)));

  int padded_h = plan.scaled_h, padded_w = plan.scaled_w;
  plan.out_h = plan.scaled_h;
  plan.out_w = plan.scaled_w;
  if (s.crop_height > 0) {
    plan.out_h = s.crop_height;
    plan.out_w = s.crop_width > 0 ? s.crop_width : s.crop_height;
    MMF_CHECK(s.pad_to_crop || (plan.scaled_h >= plan.out_h && plan.scaled_w >= plan.out_w), Error,
              "augmentation: the scaled image is ", plan.scaled_h, "x", plan.scaled_w, ", smaller than the crop ",
              plan.out_h, "x", plan.out_w, " (set pad_to_crop: true or a smaller crop)");
    padded_h = std::max(padded_h, plan.out_h);
    padded_w = std::max(padded_w, plan.out_w);
  }
  if (gen) {
    plan.crop_y = static_cast<int>(gen->below(static_cast<uint64_t>(padded_h - plan.out_h + 1)));
    plan.crop_x = static_cast<int>(gen->below(static_cast<uint64_t>(padded_w - plan.out_w + 1)));
    plan.flip = gen->uniform() < 0.5 && s.mirror;
  } else {
    plan.crop_y = (padded_h - plan.out_h) / 2;
    plan.crop_x = (padded_w - plan.out_w) / 2;
  }
  return plan;
}

void apply_plan(const AugmentPlan& p, const float* src, int channels, bool nearest, float pad_value, float* dst) {
  const size_t in_plane = static_cast<size_t>(p.src_h) * p.src_w, out_plane = static_cast<size_t>(p.out_h) * p.out_w;
  const double ry = double(p.src_h) / p.scaled_h, rx = double(p.src_w) / p.scaled_w;
  // Per output column: the scaled column it shows (-1: padding) and its source taps.
  struct Tap {
    int i0 = -1, i1 = -1;
    float w1 = 0;
  };
  auto tap = [&](int d, int scaled, int in, double ratio) {
    Tap t;
    if (d < 0 || d >= scaled) return t;
    if (nearest) {
      t.i0 = t.i1 = std::min(static_cast<int>(std::floor(d * ratio)), in - 1);
    } else {
      double x = std::max(0.0, (d + 0.5) * ratio - 0.5);
      t.i0 = std::min(static_cast<int>(x), in - 1);
      t.i1 = std::min(t.i0 + 1, in - 1);
      t.w1 = static_cast<float>(x - t.i0);
    }
    return t;
  };
  std::vector<Tap> cols(p.out_w), rows(p.out_h);
  for (int ox = 0; ox < p.out_w; ++ox)
    cols[ox] = tap((p.flip ? p.out_w - 1 - ox : ox) + p.crop_x, p.scaled_w, p.src_w, rx);
  for (int oy = 0; oy < p.out_h; ++oy) rows[oy] = tap(oy + p.crop_y, p.scaled_h, p.src_h, ry);
  for (int c = 0; c < channels; ++c) {
    const float* in = src + c * in_plane;
    float* out = dst + c * out_plane;
    for (int oy = 0; oy < p.out_h; ++oy) {
      const Tap& r = rows[oy];
      float* o = out + static_cast<size_t>(oy) * p.out_w;
      if (r.i0 < 0) {
        std::fill(o, o + p.out_w, pad_value);
        continue;
      }
      const float* row0 = in + static_cast<size_t>(r.i0) * p.src_w;
      const float* row1 = in + static_cast<size_t>(r.i1) * p.src_w;
      for (int ox = 0; ox < p.out_w; ++ox) {
        const Tap& t = cols[ox];
        if (t.i0 < 0) {
          o[ox] = pad_value;
        } else if (nearest) {
          o[ox] = row0[t.i0];
        } else {
          float top = row0[t.i0] + t.w1 * (row0[t.i1] - row0[t.i0]);
          float bottom = row1[t.i0] + t.w1 * (row1[t.i1] - row1[t.i0]);
          o[ox] = top + r.w1 * (bottom - top);
        }
      }
    }
  }
}

}  // namespace mmfuse::datasets
