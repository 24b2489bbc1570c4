// A synthetic RGB-D segmentation source whose classes need both modalities: an object's class is
// (appearance family a, geometry family g), colour tells a but not g, depth tells g but not a.
// Every sample is a pure function of (spec, seed, index) -- sample i never depends on which
// samples were made before it, so prefetch threads can make them in any order. The generator is
// specified in docs/datasets.md ("Synthetic RGB-D"); keep the two in step.
#pragma once
#include <cstdint>

#include "datasets/image.h"

namespace mmfuse::datasets {

struct SyntheticRgbdSpec {
  int height = 64, width = 64;
  int min_objects = 2, max_objects = 5;  // labelled objects per scene (segmentation)
  int max_clutter = 2;                   // unlabelled objects in background colours (segmentation)
  double depth_noise = 0.01;             // depth noise standard deviation, as a fraction of depth
  int max_hole_patches = 2;              // elliptical patches of missing depth, 0..N per image
  double edge_hole_probability = 0.5;    // chance that a pixel on a depth discontinuity is a hole
};

// Background + 3 appearance families x 2 geometry families.
constexpr int kSyntheticAppearances = 3, kSyntheticGeometries = 2;
constexpr int kSyntheticSegClasses = 1 + kSyntheticAppearances * kSyntheticGeometries;  // 7
constexpr int kSyntheticClsClasses = kSyntheticAppearances * kSyntheticGeometries;      // 6
// Segmentation label of an object of appearance a and geometry g (0 is background).
constexpr int synthetic_seg_class(int appearance, int geometry) { return 1 + 2 * appearance + geometry; }

struct SyntheticRgbdSample {
  Image rgb;    // H x W x 3, 8-bit
  Image depth;  // H x W x 1, 16-bit, millimetres, 0 = no measurement (hole)
  Image label;  // H x W x 1, 8-bit, segmentation class 0..6 of every pixel (holes included)
  int class_index = -1;  // classification samples only: 2a + g in 0..5
};

// A scene of min_objects..max_objects labelled objects (2-5 by default) and up to max_clutter
// unlabelled ones (2) over a tilted background plane.
SyntheticRgbdSample make_synthetic_rgbd(const SyntheticRgbdSpec& spec, uint64_t seed, int64_t index);
// The classification variant: one larger labelled object near the centre, no clutter;
// class_index = 2a + g, and `label` is its segmentation map (0 or 1 + class_index).
SyntheticRgbdSample make_synthetic_rgbd_cls(const SyntheticRgbdSpec& spec, uint64_t seed, int64_t index);

}  // namespace mmfuse::datasets
