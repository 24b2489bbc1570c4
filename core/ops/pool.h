// Pooling ops on [N, C, H, W] (max, average) and global average pooling over every dim after
// the channels. Semantics follow torch.nn.functional.max_pool2d / avg_pool2d (dilation 1,
// no divisor_override) and torch.mean over the trailing dims.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace mmfuse {

// Window geometry of a 2-d pooling. Kernel and stride have no usable default (0 is rejected),
// so an options struct that forgot them fails loudly instead of pooling with garbage.
//
// Output size, as PyTorch: out = floor_or_ceil((in + 2*pad - kernel) / stride) + 1, and with
// ceil_mode the last window must start inside the input or its left padding
// ((out - 1) * stride < in + pad), else out is reduced by one.
//
// Caffe's Pooling layer always rounds up: out = ceil((in + 2*pad - kernel) / stride) + 1, then
// drops the last window if it starts at or past in + pad. That is exactly ceil_mode = true here
// (the same rule, in PyTorch's words), so a Caffe `pooling_param { kernel_size stride pad }`
// maps onto {kernel, kernel, stride, stride, pad, pad, ceil_mode = true}. For AVE pooling
// Caffe divides by the window clipped to the padded bounds (in + pad), i.e.
// count_include_pad = true. Two corner cases differ: Caffe accepts any pad < kernel where we
// (as PyTorch) require pad <= kernel / 2, and Caffe applies the drop-the-last-window rule only
// when pad > 0, so with pad 0 and stride > kernel it can keep a window lying wholly past the
// input, which we drop.
struct Pool2dOptions {
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 0, stride_w = 0;
  int64_t pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  // avg_pool2d only: divide by the window clipped to the padded bounds (true) or to the
  // input (false).
  bool count_include_pad = true;

  // A square window with equal stride and padding on both axes.
  static Pool2dOptions square(int64_t kernel, int64_t stride, int64_t pad = 0, bool ceil_mode = false) {
    return {kernel, kernel, stride, stride, pad, pad, ceil_mode};
  }
};

// PyTorch's pooling_output_shape (dilation 1) for one axis; no argument checks.
int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode);

// torch.nn.functional.max_pool2d: padding acts as -inf; the gradient of each output goes to
// the first maximal input of its window in row-major scan order (a NaN counts as maximal).
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options);

// torch.nn.functional.avg_pool2d with ceil_mode and count_include_pad as in `options`.
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options);

// Mean over every dim after dim 1 (x has rank >= 2): [N, C] -> [N, C] (a copy),
// [N, C, H, W] -> [N, C], or [N, C, 1, 1] with keepdim, [N, C, T, H, W] alike. Equals
// torch.mean(x, dim=tuple(range(2, x.dim())), keepdim=keepdim) and, for 4-d input with
// keepdim, F.adaptive_avg_pool2d(x, 1).
Tensor global_avg_pool(const Tensor& x, bool keepdim = false);

}  // namespace mmfuse
