// The geometry of 2-D pooling and the window of an average.
// Shared by the CPU kernels (core/cpu/pool.h) and their CUDA twins, which take the same arguments:
// plain structs and index arithmetic, nothing of Tensor, OpenMP or CUDA. The namespace stays
// mmfuse::cpu, where the CPU kernels have always defined these names.
#pragma once
#include <cstdint>

#include "base/philox.h"  // MMF_HD

namespace mmfuse::cpu {

struct Pool2dGeometry {
  int64_t planes, in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

// The window of output (oh, ow) clipped to the input, and the divisor PyTorch uses: the
// window clipped to the padded bounds (count_include_pad) or to the input.
struct AvgWindow {
  int64_t h0, h1, w0, w1;
  int64_t divisor;
};

MMF_HD int64_t min_of(int64_t a, int64_t b) { return a < b ? a : b; }
MMF_HD int64_t max_of(int64_t a, int64_t b) { return a < b ? b : a; }

// For the CPU loops and the CUDA kernels alike.
MMF_HD AvgWindow avg_window(const Pool2dGeometry& g, int64_t oh, int64_t ow, bool count_include_pad) {
  int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
  int64_t h1 = min_of(h0 + g.kernel_h, g.in_h + g.pad_h);
  int64_t w1 = min_of(w0 + g.kernel_w, g.in_w + g.pad_w);
  int64_t padded_size = (h1 - h0) * (w1 - w0);
  AvgWindow win{max_of(h0, 0), min_of(h1, g.in_h), max_of(w0, 0), min_of(w1, g.in_w), 0};
  win.divisor = count_include_pad ? padded_size : (win.h1 - win.h0) * (win.w1 - win.w0);
  return win;
}

}  // namespace mmfuse::cpu
