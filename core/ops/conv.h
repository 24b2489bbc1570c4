// 2-D convolution ops (NCHW), on im2col + gemm.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace mmfuse {

struct Conv2dOptions {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
};

// The fields of Conv2dOptions in the same order, then the output padding (so designated
// initialisers read alike).
struct ConvTranspose2dOptions {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
  int64_t output_padding_h = 0, output_padding_w = 0;
};

// torch.nn.functional.conv2d (cross-correlation, zero padding): x [N, C, H, W], weight
// [O, C/groups, kh, kw], bias [O] or undefined -> [N, O, OH, OW] with
// OH = floor((H + 2 pad_h - dilation_h (kh - 1) - 1) / stride_h) + 1 (likewise OW).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dOptions& options = {});

// torch.nn.functional.conv_transpose2d, the adjoint of conv2d in its input: x [N, C_in, H, W],
// weight [C_in, C_out/groups, kh, kw] (PyTorch layout), bias [C_out] or undefined ->
// [N, C_out, OH, OW] with OH = (H - 1) stride_h - 2 pad_h + dilation_h (kh - 1) + output_padding_h + 1.
// output_padding must be smaller than the stride or the dilation (as PyTorch demands).
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        const ConvTranspose2dOptions& options = {});

}  // namespace mmfuse
