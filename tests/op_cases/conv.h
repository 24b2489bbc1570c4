// The conv family's option combinations on small images, written once: its op-case table
// (tests/op_cases/conv.cpp: the gradient cases, and their transposed readings) and the value
// tests of tests/ops/test_conv.cpp (against naive loops, the adjoint identity, float32 against
// float64) both iterate this list.
#pragma once
#include <cstdint>
#include <vector>

#include "core/ops.h"

namespace mmfuse::testing {

// x [batch, in_channels, height, width] * w [out_channels, in_channels / groups, kernel_h,
// kernel_w], with a bias of out_channels or none.
struct ConvOptionCase {
  const char* name;
  int64_t batch, in_channels, height, width, out_channels, kernel_h, kernel_w;
  Conv2dOptions options;
  bool bias;
};

// Stride, padding, dilation, groups, depthwise, 1x1 and all of them at once, on odd sizes (7x5
// images, N = 1 and 3), bias on and off.
const std::vector<ConvOptionCase>& conv_option_cases();

}  // namespace mmfuse::testing
