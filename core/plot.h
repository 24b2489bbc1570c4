// The training curve: a small raster plot (no third-party code) written as PNG with
// core/png.h. Two panels: losses on top (train smoothed loss, test losses), other test
// outputs (accuracy, mIoU) below; axes with tick numbers and a legend in a built-in 3x5 font.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/png.h"

namespace mmfuse {

struct PlotSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (iteration, value); non-finite values skipped
};

// Renders the panels (an empty `metrics` gives one panel) into an RGB image.
Image render_training_curve(const std::vector<PlotSeries>& losses, const std::vector<PlotSeries>& metrics,
                            int width = 800, int height = 600);
// render_training_curve + write_png (IOError when it cannot be written).
void plot_training_curve(const std::string& path, const std::vector<PlotSeries>& losses,
                         const std::vector<PlotSeries>& metrics);

}  // namespace mmfuse
