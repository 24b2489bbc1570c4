#include "core/ops/resize.h"

#include <cmath>

#include "core/cpu/resize.h"
#include "core/ops/common.h"
#include "cuda/pool.h"

namespace mmfuse {

using ops::dispatch_floating;

namespace {

cpu::ResizeGeometry resize_geometry(const char* op, const Tensor& x, int64_t out_h, int64_t out_w) {
  ops::check_floating(op, x);
  MMF_CHECK(x.dim() == 4, OpError, op, ": input must be 4-d [N, C, H, W], got ", shape_str(x.shape()));
  MMF_CHECK(x.size(2) > 0 && x.size(3) > 0, OpError, op, ": input ", shape_str(x.shape()),
            " has an empty spatial dim");
  MMF_CHECK(out_h > 0 && out_w > 0, OpError, op, ": output size must be positive, got ", out_h, "x", out_w,
            " for input ", shape_str(x.shape()));
  return {x.size(0) * x.size(1), x.size(2), x.size(3), out_h, out_w};
}

// Shared by the size and scale front-ends; scale <= 0 means "size given".
Tensor bilinear(const Tensor& x, const cpu::ResizeGeometry& geom, bool align_corners, double scale) {
  const char* op = "upsample_bilinear";
  Tensor y = Tensor::empty({x.size(0), x.size(1), geom.out_h, geom.out_w}, x.dtype(), x.device());
  dispatch_floating(op, x.dtype(), [&]<typename T>() {
    MMF_KERNEL(x, upsample_bilinear_forward, x.data<T>(), y.data<T>(), geom, align_corners, scale, scale);
  });
  autograd::record(op, {x}, {y}, [geom, align_corners, scale, in_shape = x.shape()](const TensorList& g) -> TensorList {
    // The CUDA kernels overwrite dx (gathers); the CPU ones add into zeros.
    Tensor dx = g[0].is_cuda() ? Tensor::empty(in_shape, g[0].dtype(), g[0].device())
                               : Tensor::zeros(in_shape, g[0].dtype(), g[0].device());
    dispatch_floating("upsample_bilinear", dx.dtype(), [&]<typename T>() {
      MMF_KERNEL(dx, upsample_bilinear_backward, g[0].data<T>(), dx.data<T>(), geom, align_corners, scale, scale);
    });
    return {dx};
  });
  return y;
}

}  // namespace

Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  return bilinear(x, resize_geometry("upsample_bilinear", x, out_h, out_w), align_corners, 0.0);
}

Tensor upsample_bilinear_scale(const Tensor& x, double scale, bool align_corners) {
  const char* op = "upsample_bilinear";
  ops::check_floating(op, x);
  MMF_CHECK(x.dim() == 4, OpError, op, ": input must be 4-d [N, C, H, W], got ", shape_str(x.shape()));
  MMF_CHECK(std::isfinite(scale) && scale > 0, OpError, op, ": scale factor must be positive, got ", scale);
  // PyTorch's compute_output_size: floor(in * scale) in double.
  int64_t out_h = static_cast<int64_t>(std::floor(static_cast<double>(x.size(2)) * scale));
  int64_t out_w = static_cast<int64_t>(std::floor(static_cast<double>(x.size(3)) * scale));
  MMF_CHECK(out_h > 0 && out_w > 0, OpError, op, ": scale factor ", scale, " gives an empty output for input ",
            shape_str(x.shape()));
  return bilinear(x, resize_geometry(op, x, out_h, out_w), align_corners, scale);
}

Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
  const char* op = "upsample_nearest";
  cpu::ResizeGeometry geom = resize_geometry(op, x, out_h, out_w);
  Tensor y = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  dispatch_floating(op, x.dtype(), [&]<typename T>() {
    MMF_KERNEL(x, upsample_nearest_forward, x.data<T>(), y.data<T>(), geom);
  });
  autograd::record(op, {x}, {y}, [geom, in_shape = x.shape()](const TensorList& g) -> TensorList {
    // The CUDA kernels overwrite dx (gathers); the CPU ones add into zeros.
    Tensor dx = g[0].is_cuda() ? Tensor::empty(in_shape, g[0].dtype(), g[0].device())
                               : Tensor::zeros(in_shape, g[0].dtype(), g[0].device());
    dispatch_floating("upsample_nearest", dx.dtype(), [&]<typename T>() {
      MMF_KERNEL(dx, upsample_nearest_backward, g[0].data<T>(), dx.data<T>(), geom);
    });
    return {dx};
  });
  return y;
}

}  // namespace mmfuse
