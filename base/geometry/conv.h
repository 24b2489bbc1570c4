// The geometry of 2-D convolution (conv2d's terms; see core/cpu/conv.h).
// Shared by the CPU kernels (core/cpu/conv.h) and their CUDA twins, which take the same arguments:
// plain structs and index arithmetic, nothing of Tensor, OpenMP or CUDA. The namespace stays
// mmfuse::cpu, where the CPU kernels have always defined these names.
#pragma once
#include <cstdint>

namespace mmfuse::cpu {

struct ConvGeometry {
  int64_t batch = 0, channels = 0, height = 0, width = 0;  // the image
  int64_t out_channels = 0, out_height = 0, out_width = 0;  // the output (columns of im2col)
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;

  int64_t group_channels() const { return channels / groups; }
  int64_t group_out_channels() const { return out_channels / groups; }
  int64_t kernel_area() const { return kernel_h * kernel_w; }
  int64_t col_rows() const { return group_channels() * kernel_area(); }  // K of the gemm
  int64_t out_area() const { return out_height * out_width; }
  int64_t image_area() const { return height * width; }
};

}  // namespace mmfuse::cpu
