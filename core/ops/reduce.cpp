#include "core/ops/reduce.h"

#include <algorithm>
#include <limits>

#include "core/cpu/reduce.h"
#include "core/ops/common.h"
#include "core/ops/elementwise.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/kernels.h"
#endif

namespace mmfuse {

namespace {

std::vector<bool> reduce_mask(const char* op, const Tensor& x, const std::vector<int64_t>& dims) {
  std::vector<bool> mask(x.dim(), dims.empty());
  for (int64_t d : dims) {
    int64_t w = ops::wrap_dim(op, d, x.dim());
    MMF_CHECK(!mask[w], OpError, op, ": dim ", d, " repeated");
    mask[w] = true;
  }
  return mask;
}

Shape reduced_shape(const Shape& shape, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!mask[d]) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

Shape keepdim_shape(const Shape& shape, const std::vector<bool>& mask) { return reduced_shape(shape, mask, true); }

// Sum (scale 1) or mean (scale 1/count), accumulated in double.
Tensor sum_scaled(const char* op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool average) {
  ops::check_floating(op, x);
  auto mask = reduce_mask(op, x, dims);
  Tensor out = Tensor::empty(reduced_shape(x.shape(), mask, keepdim), x.dtype(), x.device());
  double count = 1;
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) count *= static_cast<double>(x.shape()[d]);
  double scale = average ? 1.0 / std::max(count, 1.0) : 1.0;
  if (average && count == 0) scale = std::numeric_limits<double>::quiet_NaN();  // mean of nothing
  if (x.is_cuda()) {
#ifdef MMFUSE_WITH_CUDA
    ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
      cuda::reduce_sum<T>(x.data<T>(), out.data<T>(), x.shape(), mask, scale, x.device().index);
    });
#else
    ops::no_cuda_kernel(op);
#endif
  } else {
    auto plan = cpu::make_reduce_plan(x.shape(), mask);
    ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
      cpu::reduce<T>(x.data<T>(), out.data<T>(), plan, 0.0, [](double a, T v, int64_t) { return a + v; },
                     [scale](double a) { return static_cast<T>(a * scale); });
    });
  }
  Shape in_shape = x.shape(), kshape = keepdim_shape(x.shape(), mask);
  autograd::record(op, {x}, {out}, [in_shape, kshape, scale](const TensorList& g) -> TensorList {
    Tensor gk = g[0].reshape(kshape);
    Tensor e = expand_to(gk, in_shape);
    return {scale == 1.0 ? e : mul_scalar(e, scale)};
  });
  return out;
}

// The CUDA branch of max: the offsets of the maxima stay on the device, in an int64 tensor
// captured by the backward (the CPU branch keeps them in a host vector).
Tensor max_cuda(const Tensor& x, const std::vector<bool>& mask, const Tensor& out) {
#ifdef MMFUSE_WITH_CUDA
  int64_t reduced = 1;
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) reduced *= x.shape()[d];
  MMF_CHECK(reduced > 0 || out.numel() == 0, OpError, "max: empty reduction over ", shape_str(x.shape()));
  int device = x.device().index;
  Tensor argmax = Tensor::empty(out.shape(), DType::i64, x.device());
  ops::dispatch_floating("max", x.dtype(), [&]<typename T>() {
    cuda::reduce_max<T>(x.data<T>(), out.data<T>(), argmax.data<int64_t>(), x.shape(), mask, device);
  });
  autograd::record("max", {x}, {out}, [argmax, in_shape = x.shape()](const TensorList& g) -> TensorList {
    MMF_CHECK(g[0].device() == argmax.device(), OpError, "max: gradient ", g[0].str(), " for a result on ",
              argmax.device().str());
    Tensor dx = Tensor::zeros(in_shape, g[0].dtype(), g[0].device());
    ops::dispatch_floating("max", g[0].dtype(), [&]<typename T>() {
      cuda::max_backward<T>(g[0].data<T>(), argmax.data<int64_t>(), dx.data<T>(), argmax.numel(),
                            g[0].device().index);
    });
    return {dx};
  });
  return out;
#else
  (void)x, (void)mask, (void)out;
  ops::no_cuda_kernel("max");
#endif
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_scaled("sum", x, dims, keepdim, false);
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_scaled("mean", x, dims, keepdim, true);
}

Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const char* op = "max";
  ops::check_floating(op, x);
  auto mask = reduce_mask(op, x, dims);
  Shape out_shape = reduced_shape(x.shape(), mask, keepdim);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (x.is_cuda()) return max_cuda(x, mask, out);
  auto plan = cpu::make_reduce_plan(x.shape(), mask);
  // Like PyTorch: the maximum of nothing is an error, unless there is no output either.
  MMF_CHECK(!plan.reduce_offsets.empty() || plan.out_offsets.empty(), OpError, op, ": empty reduction over ",
            shape_str(x.shape()));
  // Input offset of each output's maximum, kept for backward.
  auto argmax = std::make_shared<std::vector<int64_t>>(plan.out_offsets.size());
  ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    cpu::parallel_for(static_cast<int64_t>(plan.out_offsets.size()), 256, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        int64_t best = plan.out_offsets[o] + plan.reduce_offsets[0];
        for (int64_t off : plan.reduce_offsets) {
          int64_t i = plan.out_offsets[o] + off;
          if (px[i] > px[best]) best = i;
        }
        (*argmax)[o] = best;
        po[o] = px[best];
      }
    });
  });
  autograd::record(op, {x}, {out}, [argmax, in_shape = x.shape()](const TensorList& g) -> TensorList {
    Tensor dx = Tensor::zeros(in_shape, g[0].dtype(), g[0].device());
    ops::dispatch_floating("max", g[0].dtype(), [&]<typename T>() {
      const T* pg = g[0].data<T>();
      T* pd = dx.data<T>();
      for (size_t o = 0; o < argmax->size(); ++o) pd[(*argmax)[o]] += pg[o];
    });
    return {dx};
  });
  return out;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  MMF_CHECK(lead >= 0, OpError, "sum_to: cannot reduce ", shape_str(x.shape()), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) { dims.push_back(d); continue; }
    int64_t want = shape[d - lead];
    if (want == 1 && x.shape()[d] != 1) dims.push_back(d);
    else MMF_CHECK(want == x.shape()[d], OpError, "sum_to: cannot reduce ", shape_str(x.shape()), " to ", shape_str(shape));
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, true).reshape(shape);
}

Tensor expand_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  // Broadcasting add onto zeros: one pass, and autograd gives sum_to as the backward.
  return add(Tensor::zeros(shape, x.dtype(), x.device()), x);
}

}  // namespace mmfuse
