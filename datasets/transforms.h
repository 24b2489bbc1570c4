// Geometric transforms on HWC float images (host side, used by dataset sources).
#pragma once
#include <vector>

namespace mmfuse::datasets {

// Rotates an H x W x C image by `degrees` (counter-clockwise as displayed, y pointing down)
// about its centre ((W-1)/2, (H-1)/2), with bilinear interpolation and zero fill outside the
// source -- torchvision's rotate(..., InterpolationMode.BILINEAR, fill=0) semantics, same size.
std::vector<float> rotate_bilinear(const std::vector<float>& src, int height, int width, int channels,
                                   double degrees);

}  // namespace mmfuse::datasets
