#include "core/ops/pool.h"

#include "core/cpu/dnnl.h"
#include "core/cpu/pool.h"
#include "core/ops/common.h"
#include "cuda/pool.h"

namespace mmfuse {

using ops::dispatch_floating;

namespace {

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// PyTorch's pool2d_shape_check (dilation 1), with messages that name the op and the shapes.
cpu::Pool2dGeometry pool_geometry(const char* op, const Tensor& x, const Pool2dOptions& o) {
  ops::check_floating(op, x);
  MMF_CHECK(x.dim() == 4, OpError, op, ": input must be 4-d [N, C, H, W], got ", shape_str(x.shape()));
  MMF_CHECK(x.size(2) > 0 && x.size(3) > 0, OpError, op, ": input ", shape_str(x.shape()),
            " has an empty spatial dim");
  MMF_CHECK(o.kernel_h > 0 && o.kernel_w > 0, OpError, op, ": kernel must be positive, got ", o.kernel_h,
            "x", o.kernel_w);
  MMF_CHECK(o.stride_h > 0 && o.stride_w > 0, OpError, op, ": stride must be positive, got ", o.stride_h,
            "x", o.stride_w);
  MMF_CHECK(o.pad_h >= 0 && o.pad_w >= 0, OpError, op, ": pad must be non-negative, got ", o.pad_h, "x",
            o.pad_w);
  MMF_CHECK(o.pad_h <= o.kernel_h / 2 && o.pad_w <= o.kernel_w / 2, OpError, op,
            ": pad should be at most half of the kernel, got pad ", o.pad_h, "x", o.pad_w, " for kernel ",
            o.kernel_h, "x", o.kernel_w);
  cpu::Pool2dGeometry g{};
  g.planes = x.size(0) * x.size(1);
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.out_h = pool_output_size(g.in_h, o.kernel_h, o.stride_h, o.pad_h, o.ceil_mode);
  g.out_w = pool_output_size(g.in_w, o.kernel_w, o.stride_w, o.pad_w, o.ceil_mode);
  MMF_CHECK(g.out_h >= 1 && g.out_w >= 1, OpError, op, ": input ", shape_str(x.shape()),
            " is too small for kernel ", o.kernel_h, "x", o.kernel_w, " with pad ", o.pad_h, "x", o.pad_w,
            " (output would be ", g.out_h, "x", g.out_w, ")");
  g.kernel_h = o.kernel_h;
  g.kernel_w = o.kernel_w;
  g.stride_h = o.stride_h;
  g.stride_w = o.stride_w;
  g.pad_h = o.pad_h;
  g.pad_w = o.pad_w;
  return g;
}

Shape pooled_shape(const Tensor& x, const cpu::Pool2dGeometry& g) { return {x.size(0), x.size(1), g.out_h, g.out_w}; }

}  // namespace

int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode) {
  int64_t out = floor_div(in + 2 * pad - kernel + (ceil_mode ? stride - 1 : 0), stride) + 1;
  // The last window must start inside the input or the left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

namespace {

// max_pool2d of float32 on the CPU through oneDNN (core/cpu/dnnl.h) into y, with its backward
// recorded: the workspace, which takes the place of our argmax; an undefined Tensor, having
// done nothing, where our kernels are to run it.
Tensor dnnl_max_pool(const Tensor& x, const cpu::Pool2dGeometry& geom, const Tensor& y) {
  if (x.is_cuda() || x.dtype() != DType::f32) return Tensor();
  Tensor workspace;
  auto allocate = [&](size_t bytes) {
    workspace = Tensor::empty({static_cast<int64_t>(bytes)}, DType::u8, x.device());
    return workspace.raw_data();
  };
  if (!cpu::dnnl_max_pool_forward(geom, x.data<float>(), y.data<float>(), allocate)) return Tensor();
  autograd::record("max_pool2d", {x}, {y}, [geom, workspace, in_shape = x.shape()](const TensorList& g) -> TensorList {
    Tensor dx = Tensor::empty(in_shape, g[0].dtype(), g[0].device());
    cpu::dnnl_max_pool_backward(geom, g[0].data<float>(), workspace.raw_data(), dx.data<float>());
    return {dx};
  });
  return workspace;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options) {
  const char* op = "max_pool2d";
  cpu::Pool2dGeometry geom = pool_geometry(op, x, options);
  Tensor y = Tensor::empty(pooled_shape(x, geom), x.dtype(), x.device());
  if (dnnl_max_pool(x, geom, y).defined()) return y;
  Tensor argmax = Tensor::empty(y.shape(), DType::i64, x.device());
  dispatch_floating(op, x.dtype(), [&]<typename T>() {
    MMF_KERNEL(x, max_pool2d_forward, x.data<T>(), y.data<T>(), argmax.data<int64_t>(), geom);
  });
  autograd::record(op, {x}, {y}, [geom, argmax, in_shape = x.shape()](const TensorList& g) -> TensorList {
    // The CUDA kernels overwrite dx (gathers); the CPU ones add into zeros.
    Tensor dx = g[0].is_cuda() ? Tensor::empty(in_shape, g[0].dtype(), g[0].device())
                               : Tensor::zeros(in_shape, g[0].dtype(), g[0].device());
    dispatch_floating("max_pool2d", dx.dtype(), [&]<typename T>() {
      MMF_KERNEL(dx, max_pool2d_backward, g[0].data<T>(), argmax.data<int64_t>(), dx.data<T>(), geom);
    });
    return {dx};
  });
  return y;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options) {
  const char* op = "avg_pool2d";
  cpu::Pool2dGeometry geom = pool_geometry(op, x, options);
  bool include_pad = options.count_include_pad;
  Tensor y = Tensor::empty(pooled_shape(x, geom), x.dtype(), x.device());
  dispatch_floating(op, x.dtype(), [&]<typename T>() {
    MMF_KERNEL(x, avg_pool2d_forward, x.data<T>(), y.data<T>(), geom, include_pad);
  });
  autograd::record(op, {x}, {y}, [geom, include_pad, in_shape = x.shape()](const TensorList& g) -> TensorList {
    // The CUDA kernels overwrite dx (gathers); the CPU ones add into zeros.
    Tensor dx = g[0].is_cuda() ? Tensor::empty(in_shape, g[0].dtype(), g[0].device())
                               : Tensor::zeros(in_shape, g[0].dtype(), g[0].device());
    dispatch_floating("avg_pool2d", dx.dtype(), [&]<typename T>() {
      MMF_KERNEL(dx, avg_pool2d_backward, g[0].data<T>(), dx.data<T>(), geom, include_pad);
    });
    return {dx};
  });
  return y;
}

Tensor global_avg_pool(const Tensor& x, bool keepdim) {
  const char* op = "global_avg_pool";
  ops::check_floating(op, x);
  MMF_CHECK(x.dim() >= 2, OpError, op, ": input must have rank >= 2 ([N, C, ...]), got ",
            shape_str(x.shape()));
  Shape out_shape = {x.size(0), x.size(1)};
  if (keepdim) out_shape.resize(x.dim(), 1);
  int64_t rows = x.size(0) * x.size(1);
  int64_t inner = 1;
  for (int64_t d = 2; d < x.dim(); ++d) inner *= x.size(d);
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  dispatch_floating(op, x.dtype(), [&]<typename T>() {
    MMF_KERNEL(x, row_mean_forward, x.data<T>(), y.data<T>(), rows, inner);
  });
  autograd::record(op, {x}, {y}, [rows, inner, in_shape = x.shape()](const TensorList& g) -> TensorList {
    Tensor dx = Tensor::empty(in_shape, g[0].dtype(), g[0].device());
    dispatch_floating("global_avg_pool", dx.dtype(), [&]<typename T>() {
      MMF_KERNEL(dx, row_mean_backward, g[0].data<T>(), dx.data<T>(), rows, inner);
    });
    return {dx};
  });
  return y;
}

}  // namespace mmfuse
