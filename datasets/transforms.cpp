#include "datasets/transforms.h"

#include <cmath>
#include <numbers>

#include "base/error.h"

namespace mmfuse::datasets {

std::vector<float> rotate_bilinear(const std::vector<float>& src, int height, int width, int channels,
                                   double degrees) {
  MMF_CHECK(height > 0 && width > 0 && channels > 0 &&
                src.size() == static_cast<size_t>(height) * width * channels,
            Error, "rotate_bilinear: ", src.size(), " values for a ", height, "x", width, "x", channels, " image");
  std::vector<float> dst(src.size(), 0.0f);
  const double a = degrees * std::numbers::pi / 180.0, c = std::cos(a), s = std::sin(a);
  const double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      // Inverse map: the output pixel (x, y) comes from the source point rotated back by -a.
      // With y down, a counter-clockwise rotation on screen is x' = c dx + s dy, y' = -s dx + c dy.
      double dx = x - cx, dy = y - cy;
      double sx = c * dx - s * dy + cx, sy = s * dx + c * dy + cy;
      int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
      double fx = sx - x0, fy = sy - y0;
      for (int ch = 0; ch < channels; ++ch) {
        double v = 0;
        for (int k = 0; k < 4; ++k) {
          int xi = x0 + (k & 1), yi = y0 + (k >> 1);
          if (xi < 0 || xi >= width || yi < 0 || yi >= height) continue;  // zero fill
          double w = ((k & 1) ? fx : 1 - fx) * ((k >> 1) ? fy : 1 - fy);
          v += w * src[(static_cast<size_t>(yi) * width + xi) * channels + ch];
        }
        dst[(static_cast<size_t>(y) * width + x) * channels + ch] = static_cast<float>(v);
      }
    }
  return dst;
}

}  // namespace mmfuse::datasets
