#include "core/ops/loss.h"

#include <limits>

#include "core/cpu/loss.h"
#include "core/ops/common.h"
#include "cuda/loss.h"

namespace mmfuse {

namespace {

int64_t product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= shape[i];
  return p;
}

// What the total of the losses is divided by: 1 for sum; for mean the positions counted, NaN
// when none is (as PyTorch). The kernels of both devices take it (cpu::pointwise_loss_sum,
// cpu::cross_entropy_total and their CUDA twins).
double divisor_of(Reduction reduction, int64_t count) {
  if (reduction == Reduction::sum) return 1.0;
  return count > 0 ? static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
}

Tensor softmax_impl(const char* op, const Tensor& x, int64_t dim, bool log) {
  ops::check_floating(op, x);
  // A 0-d tensor is a single line of length 1 (dim 0 or -1), as in PyTorch.
  const int64_t d = ops::wrap_dim(op, dim, std::max<int64_t>(x.dim(), 1));
  cpu::LineGeometry geo;
  if (x.dim() > 0) {
    geo.outer = product(x.shape(), 0, d);
    geo.dim = x.shape()[d];
    geo.inner = product(x.shape(), d + 1, x.shape().size());
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  ops::dispatch_floating(op, x.dtype(), [&]<typename T>() { MMF_KERNEL(x, softmax_forward, x.data<T>(), y.data<T>(), geo, log); });
  autograd::record(op, {x}, {y}, [op, y = y.detach(), geo, log](const TensorList& g) -> TensorList {
    Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
    ops::dispatch_floating(op, y.dtype(), [&]<typename T>() {
      MMF_KERNEL(y, softmax_backward, y.data<T>(), g[0].data<T>(), dx.data<T>(), geo, log);
    });
    return {dx};
  });
  return y;
}

Tensor pointwise_loss_op(const char* op, cpu::PointwiseLoss kind, const Tensor& input, const Tensor& target,
                         Reduction reduction) {
  ops::check_floating(op, input);
  ops::check_compatible(op, input, target);
  MMF_CHECK(input.shape() == target.shape(), OpError, op, ": input ", shape_str(input.shape()), " and target ",
            shape_str(target.shape()), " must have the same shape");
  const int64_t n = input.numel();
  Tensor out;
  ops::dispatch_floating(op, input.dtype(), [&]<typename T>() {
    if (reduction == Reduction::none) {
      out = Tensor::empty(input.shape(), input.dtype(), input.device());
      MMF_KERNEL(input, pointwise_loss, input.data<T>(), target.data<T>(), out.data<T>(), n, kind);
    } else {
      out = Tensor::empty({}, input.dtype(), input.device());
      MMF_KERNEL(input, pointwise_loss_sum, input.data<T>(), target.data<T>(), out.data<T>(), n, kind,
                 divisor_of(reduction, n));
    }
  });
  const double scale = reduction == Reduction::mean && n > 0 ? 1.0 / static_cast<double>(n) : 1.0;
  const bool gi = input.requires_grad(), gt = target.requires_grad();
  autograd::record(op, {input, target}, {out},
                   [op, kind, input = input.detach(), target = target.detach(), scale, gi, gt,
                    per_element = reduction == Reduction::none](const TensorList& g) -> TensorList {
                     Tensor dx, dt;
                     if (gi) dx = Tensor::empty(input.shape(), input.dtype(), input.device());
                     if (gt) dt = Tensor::empty(target.shape(), target.dtype(), target.device());
                     ops::dispatch_floating(op, input.dtype(), [&]<typename T>() {
                       MMF_KERNEL(input, pointwise_loss_backward, input.data<T>(), target.data<T>(), g[0].data<T>(),
                                  per_element, scale, gi ? dx.data<T>() : nullptr, gt ? dt.data<T>() : nullptr,
                                  input.numel(), kind);
                     });
                     return {dx, dt};
                   });
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl("softmax", x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl("log_softmax", x, dim, true); }

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, Reduction reduction,
                     int64_t* counted) {
  const char* op = "cross_entropy";
  ops::check_floating(op, logits);
  ops::check_defined(op, target, "target");
  MMF_CHECK(target.dtype() == DType::i32, OpError, op, ": target must hold int32 class indices, got ", target.str());
  MMF_CHECK(target.device() == logits.device(), OpError, op, ": logits ", logits.str(), " and target ",
            target.str(), " must be on one device");
  MMF_CHECK(logits.dim() >= 1, OpError, op, ": logits must be [N, K, ...] or [K], got ", shape_str(logits.shape()));
  // logits seen as [N, K, S], target as [N, S].
  cpu::LineGeometry geo;
  Shape expected;
  if (logits.dim() == 1) {
    geo.dim = logits.size(0);
  } else {
    geo.outer = logits.size(0);
    geo.dim = logits.size(1);
    geo.inner = product(logits.shape(), 2, logits.shape().size());
    expected = logits.shape();
    expected.erase(expected.begin() + 1);
  }
  MMF_CHECK(target.shape() == expected, OpError, op, ": target ", shape_str(target.shape()), " does not match logits ",
            shape_str(logits.shape()), " (expected target ", shape_str(expected), ")");

  // The labels are validated and counted where they are: on the host, or by a device kernel
  // that returns only the count and the first bad position (the targets stay on the GPU).
  const int64_t positions = target.numel();
  cpu::TargetCheck check;
  MMF_KERNEL_UNTYPED(target, cross_entropy_check_targets, target.data<int32_t>(), positions, geo.dim, ignore_index,
                     &check);
  if (check.first_bad >= 0) {
    Shape position(expected.size());
    for (int64_t d = static_cast<int64_t>(expected.size()) - 1, rest = check.first_bad; d >= 0; --d) {
      position[d] = rest % expected[d];
      rest /= expected[d];
    }
    int32_t value = target.reshape({positions}).narrow(check.first_bad, 1).to(Device::cpu()).data<int32_t>()[0];
    throw OpError(detail::concat(op, ": target ", value, " at position ", shape_str(position),
                                 " is outside [0, ", geo.dim, ") and is not ignore_index ", ignore_index,
                                 " (logits ", shape_str(logits.shape()), ")"));
  }
  const int64_t count = check.counted;
  if (counted) *counted = count;

  // Per-position logsumexp (saved for backward) and loss, on the logits' device; then the
  // losses as they are (none), or their total (a 0-d tensor there).
  Tensor lse = Tensor::empty({positions}, DType::f64, logits.device());
  Tensor loss = Tensor::empty({positions}, DType::f64, logits.device());
  Tensor out;
  ops::dispatch_floating(op, logits.dtype(), [&]<typename T>() {
    MMF_KERNEL(logits, cross_entropy_forward, logits.data<T>(), target.data<int32_t>(), geo, ignore_index,
               lse.data<double>(), loss.data<double>());
    if (reduction == Reduction::none) {
      out = loss.to(logits.dtype()).reshape(target.shape());
    } else {
      out = Tensor::empty({}, logits.dtype(), logits.device());
      MMF_KERNEL(logits, cross_entropy_total, loss.data<double>(), positions, divisor_of(reduction, count),
                 out.data<T>());
    }
  });

  const double scale = reduction == Reduction::mean && count > 0 ? 1.0 / static_cast<double>(count) : 1.0;
  autograd::record(op, {logits}, {out},
                   [logits = logits.detach(), target = target.detach(), lse, geo, ignore_index, scale,
                    per_position = reduction == Reduction::none](const TensorList& g) -> TensorList {
                     Tensor dx = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
                     ops::dispatch_floating("cross_entropy", logits.dtype(), [&]<typename T>() {
                       MMF_KERNEL(logits, cross_entropy_backward, logits.data<T>(), target.data<int32_t>(),
                                  lse.data<double>(), geo, ignore_index, g[0].data<T>(), per_position, scale,
                                  dx.data<T>());
                     });
                     return {dx};
                   });
  return out;
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  return pointwise_loss_op("l1_loss", cpu::PointwiseLoss::l1, input, target, reduction);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  return pointwise_loss_op("mse_loss", cpu::PointwiseLoss::mse, input, target, reduction);
}

}  // namespace mmfuse
