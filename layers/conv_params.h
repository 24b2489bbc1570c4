// Shared by the Convolution, Deconvolution and InnerProduct layers: Caffe's convolution
// geometry fields read into one struct, and the default fillers of weights and biases.
#pragma once
#include <string>

#include "core/filler.h"
#include "core/layer.h"

namespace mmfuse::layers {

struct ConvGeometry {
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
};

// Checks the bottom ([N, C, H, W], axis 1), num_output and group of a Convolution or
// Deconvolution layer, and reads Caffe's 2-d geometry: kernel_size (1 or 2 values) or
// kernel_h + kernel_w; pad / stride / dilation: none (0 / 1 / 1), one value for both axes, or
// two (h, w); pad_h/pad_w and stride_h/stride_w instead of pad / stride. `fail` throws naming
// the layer.
template <typename Fail>
ConvGeometry read_conv_geometry(const proto::ConvolutionParameter& p, const Shape& x, Fail&& fail) {
  if (x.size() != 4) fail("expects a [N, C, H, W] bottom, got ", shape_str(x));
  if (p.axis() != 1) fail("only axis 1 (NCHW) is supported, got axis ", p.axis());
  if (!p.has_num_output() || p.num_output() < 1) fail("num_output must be given and positive");
  ConvGeometry g;
  auto pick = [&](const auto& values, const char* name, int64_t fallback, int64_t& h, int64_t& w) {
    if (values.size() > 2) fail(name, " has ", values.size(), " values (give 1, or 2 for h and w)");
    h = values.size() > 0 ? values.Get(0) : fallback;
    w = values.size() > 1 ? values.Get(1) : h;
  };
  if (p.has_kernel_h() || p.has_kernel_w()) {
    if (p.kernel_size_size() > 0) fail("give kernel_size or kernel_h and kernel_w, not both");
    if (!p.has_kernel_h() || !p.has_kernel_w()) fail("kernel_h and kernel_w go together");
    g.kernel_h = p.kernel_h();
    g.kernel_w = p.kernel_w();
  } else {
    if (p.kernel_size_size() == 0) fail("kernel_size (or kernel_h and kernel_w) is required");
    pick(p.kernel_size(), "kernel_size", 0, g.kernel_h, g.kernel_w);
  }
  if (p.has_pad_h() || p.has_pad_w()) {
    if (p.pad_size() > 0) fail("give pad or pad_h and pad_w, not both");
    g.pad_h = p.pad_h();
    g.pad_w = p.pad_w();
  } else {
    pick(p.pad(), "pad", 0, g.pad_h, g.pad_w);
  }
  if (p.has_stride_h() || p.has_stride_w()) {
    if (p.stride_size() > 0) fail("give stride or stride_h and stride_w, not both");
    if (!p.has_stride_h() || !p.has_stride_w()) fail("stride_h and stride_w go together");
    g.stride_h = p.stride_h();
    g.stride_w = p.stride_w();
  } else {
    pick(p.stride(), "stride", 1, g.stride_h, g.stride_w);
  }
  pick(p.dilation(), "dilation", 1, g.dilation_h, g.dilation_w);
  if (g.kernel_h < 1 || g.kernel_w < 1) fail("kernel must be positive, got ", g.kernel_h, "x", g.kernel_w);
  if (g.stride_h < 1 || g.stride_w < 1) fail("stride must be positive, got ", g.stride_h, "x", g.stride_w);
  if (g.dilation_h < 1 || g.dilation_w < 1) fail("dilation must be positive, got ", g.dilation_h, "x", g.dilation_w);
  int64_t out = p.num_output(), groups = p.group(), channels = x[1];
  if (groups < 1 || channels % groups != 0 || out % groups != 0)
    fail("group ", groups, " must divide the bottom's channels (", channels, ") and num_output (", out, ")");
  return g;
}

// A layer's weight filler: its own, else (the Net has already applied `defaults`) PyTorch's
// default initialisation. Caffe's default (constant 0) never trains, so it is not used.
inline proto::FillerParameter weight_filler_or_default(bool has, const proto::FillerParameter& given) {
  return has ? given : make_filler("pytorch");
}

}  // namespace mmfuse::layers
