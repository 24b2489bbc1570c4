#include "core/ops/reduce.h"

#include <algorithm>
#include <limits>

#include "core/cpu/reduce.h"
#include "core/ops/common.h"
#include "core/ops/elementwise.h"
#include "cuda/kernels.h"

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

// How many elements each output folds: the product of the reduced dims.
int64_t reduced_count(const Shape& shape, const std::vector<bool>& mask) {
  int64_t count = 1;
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) count *= shape[d];
  return count;
}

// Sum (scale 1) or mean (scale 1/count), accumulated in double.
Tensor sum_scaled(const char* op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool average) {
  ops::check_floating(op, x);
  auto mask = reduce_mask(op, x, dims);
  Tensor out = Tensor::empty(reduced_shape(x.shape(), mask, keepdim), x.dtype(), x.device());
  const double count = static_cast<double>(reduced_count(x.shape(), mask));
  double scale = average ? 1.0 / std::max(count, 1.0) : 1.0;
  if (average && count == 0) scale = std::numeric_limits<double>::quiet_NaN();  // mean of nothing
  ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
    MMF_KERNEL(x, reduce_sum, x.data<T>(), out.data<T>(), x.shape(), mask, scale);
  });
  Shape in_shape = x.shape(), kshape = keepdim_shape(x.shape(), mask);
  autograd::record(op, {x}, {out}, [in_shape, kshape, scale](const TensorList& g) -> TensorList {
    Tensor gk = g[0].reshape(kshape);
    Tensor e = expand_to(gk, in_shape);
    return {scale == 1.0 ? e : mul_scalar(e, scale)};
  });
  return out;
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
  Tensor out = Tensor::empty(reduced_shape(x.shape(), mask, keepdim), x.dtype(), x.device());
  // Like PyTorch: the maximum of nothing is an error, unless there is no output either.
  MMF_CHECK(reduced_count(x.shape(), mask) > 0 || out.numel() == 0, OpError, op, ": empty reduction over ", shape_str(x.shape()));
  // The input offset of each output's maximum, on x's device, kept for backward.
  Tensor argmax = Tensor::empty(out.shape(), DType::i64, x.device());
  if (out.numel() > 0)
    ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
      MMF_KERNEL(x, reduce_max, x.data<T>(), out.data<T>(), argmax.data<int64_t>(), x.shape(), mask);
    });
  autograd::record(op, {x}, {out}, [argmax, in_shape = x.shape()](const TensorList& g) -> TensorList {
    MMF_CHECK(g[0].device() == argmax.device(), OpError, "max: gradient ", g[0].str(), " for a result on ",
              argmax.device().str());
    Tensor dx = Tensor::zeros(in_shape, g[0].dtype(), g[0].device());
    ops::dispatch_floating("max", g[0].dtype(), [&]<typename T>() {
      MMF_KERNEL(dx, max_backward, g[0].data<T>(), argmax.data<int64_t>(), dx.data<T>(), argmax.numel());
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
