// CPU kernels of 2-D convolution: im2col / col2im and the three products built on them. Every
// kernel speaks conv2d's terms: an image [N, C, H, W] correlated with a weight
// [O, C/groups, kernel_h, kernel_w] gives an output [N, O, out_h, out_w]. conv_transpose2d is
// the same geometry read backwards (its input plays the output), so it reuses these kernels.
// Raw pointers and a plain struct, so that a CUDA twin can take the same arguments.
#pragma once
#include <cstdint>

#include "base/geometry/conv.h"

namespace mmfuse::cpu {

// One image plane (height x width) to its kernel_area() rows of columns: row ki*kernel_w + kj,
// column oy*out_width + ox holds the pixel that kernel tap (ki, kj) sees at output (oy, ox),
// 0 in the padding. Rows are `ld` elements apart.
template <typename T>
void im2col_plane(const ConvGeometry& g, const T* plane, T* cols, int64_t ld);
// The adjoint: adds every column entry back onto the pixel it came from.
template <typename T>
void col2im_plane(const ConvGeometry& g, const T* cols, int64_t ld, T* plane);

// out = image (*) weight (no bias).
template <typename T>
void conv_forward(const ConvGeometry& g, const T* image, const T* weight, T* out);
// grad_image = the adjoint of conv_forward in the image, applied to grad_out (overwrites).
template <typename T>
void conv_backward_data(const ConvGeometry& g, const T* grad_out, const T* weight, T* grad_image);
// grad_weight = d<grad_out, conv_forward(image, w)>/dw, summed over the batch in batch order
// (overwrites).
template <typename T>
void conv_backward_weight(const ConvGeometry& g, const T* image, const T* grad_out, T* grad_weight);

// out[n, c, :] += bias[c] for out [batch, channels, area].
template <typename T>
void add_channel_bias(T* out, const T* bias, int64_t batch, int64_t channels, int64_t area);

}  // namespace mmfuse::cpu
