#include "core/ops/fusion.h"

#include <algorithm>
#include <cmath>

#include "core/cpu/fusion.h"
#include "core/ops/common.h"
#include "cuda/fusion.h"

namespace mmfuse {

namespace {

// x [M*N, ...]: returns N.
int64_t per_modality_batch(const char* op, const Shape& x, int64_t modalities) {
  MMF_CHECK(modalities >= 1, OpError, op, ": modalities must be >= 1, got ", modalities);
  MMF_CHECK(!x.empty(), OpError, op, ": expects a modality-stacked tensor [M*N, ...], got ", shape_str(x));
  MMF_CHECK(x[0] % modalities == 0, OpError, op, ": batch of ", shape_str(x), " is not divisible by modalities = ",
            modalities);
  return x[0] / modalities;
}
int64_t per_modality_batch(const char* op, const Tensor& x, int64_t modalities) {
  return per_modality_batch(op, x.shape(), modalities);
}

// receives[m]: modality m takes from modality (m+1) mod M. Empty list: all modalities.
std::vector<bool> receiver_mask(const char* op, const std::vector<int64_t>& receivers, int64_t modalities) {
  MMF_CHECK(modalities <= cpu::kMaxExchangeModalities, OpError, op, ": at most ", cpu::kMaxExchangeModalities,
            " modalities exchange channels, got ", modalities);
  std::vector<bool> mask(modalities, receivers.empty());
  for (int64_t r : receivers) {
    MMF_CHECK(r >= 0 && r < modalities, OpError, op, ": receiver ", r, " out of range for modalities = ", modalities);
    MMF_CHECK(!mask[r], OpError, op, ": receiver ", r, " listed twice");
    mask[r] = true;
  }
  return mask;
}

// The exchange both devices' kernels read (base/geometry/fusion.h): one bit per receiving
// modality (receiver_mask has checked the count).
cpu::Exchange make_exchange(const std::vector<bool>& receives, int64_t batch) {
  cpu::Exchange ex;
  ex.batch = batch;
  ex.modalities = static_cast<int64_t>(receives.size());
  for (size_t m = 0; m < receives.size(); ++m)
    if (receives[m]) ex.receives |= uint64_t{1} << m;
  return ex;
}

int64_t inner_size(const Tensor& x, int64_t leading) {
  return leading ? x.numel() / leading : 0;
}

}  // namespace

int64_t channel_shuffle_kept(int64_t channels, double keep_ratio) {
  MMF_CHECK(keep_ratio >= 0 && keep_ratio <= 1, OpError, "channel_shuffle: keep_ratio ", keep_ratio,
            " is outside [0, 1]");
  // The smallest q with keep_ratio * q an integer p gives p/q in lowest terms. The tolerance
  // admits single-precision ratios (prototxt floats: 0.8f is 0.800000011920929).
  for (int64_t q = 1; q <= 100; ++q) {
    double pq = keep_ratio * static_cast<double>(q);
    double p = std::round(pq);
    if (std::abs(pq - p) <= 1e-6 * static_cast<double>(q)) return static_cast<int64_t>(p) * (channels / q);
  }
  throw OpError(detail::concat("channel_shuffle: keep_ratio ", keep_ratio,
                               " is not a fraction p/q with q <= 100 (the channels are cut into q groups)"));
}

Shape channel_shuffle_shape(const Shape& x, int64_t modalities, double keep_ratio,
                            const std::vector<int64_t>& receivers) {
  const char* op = "channel_shuffle";
  MMF_CHECK(x.size() >= 2, OpError, op, ": expects a modality-stacked [M*N, C, ...] input, got ", shape_str(x));
  per_modality_batch(op, x, modalities);
  receiver_mask(op, receivers, modalities);
  channel_shuffle_kept(x[1], keep_ratio);
  return x;
}

Tensor channel_shuffle(const Tensor& x, int64_t modalities, double keep_ratio, const std::vector<int64_t>& receivers) {
  const char* op = "channel_shuffle";
  ops::check_floating(op, x);
  channel_shuffle_shape(x.shape(), modalities, keep_ratio, receivers);
  int64_t batch = per_modality_batch(op, x, modalities);
  auto receives = receiver_mask(op, receivers, modalities);
  int64_t rows = x.size(0), channels = x.size(1), inner = inner_size(x, rows * channels);
  int64_t keep = channel_shuffle_kept(channels, keep_ratio);
  const cpu::Exchange ex = make_exchange(receives, batch);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
    MMF_KERNEL(x, channel_shuffle_forward, x.data<T>(), out.data<T>(), rows, channels, inner, keep, ex);
  });
  autograd::record(op, {x}, {out}, [=](const TensorList& g) -> TensorList {
    Tensor dx = Tensor::empty(g[0].shape(), g[0].dtype(), g[0].device());
    ops::dispatch_floating(op, dx.dtype(), [&]<typename T>() {
      MMF_KERNEL(dx, channel_shuffle_backward, g[0].data<T>(), dx.data<T>(), rows, channels, inner, keep, ex);
    });
    return {dx};
  });
  return out;
}

Shape pixel_shift_add_shape(const Shape& y, const Shape& a, int64_t modalities, int64_t groups, int64_t shift,
                            const std::vector<int64_t>& receivers) {
  const char* op = "pixel_shift_add";
  MMF_CHECK(y.size() == 4, OpError, op, ": y must be 4-d [M*N, C, H, W], got ", shape_str(y));
  MMF_CHECK(a == y, OpError, op, ": y ", shape_str(y), " and a ", shape_str(a), " must have the same shape");
  MMF_CHECK(groups >= 1 && groups <= 32, OpError, op, ": groups must be in [1, 32], got ", groups);
  MMF_CHECK(shift >= 0, OpError, op, ": shift must be >= 0, got ", shift);
  per_modality_batch(op, y, modalities);
  receiver_mask(op, receivers, modalities);
  return y;
}

Tensor pixel_shift_add(const Tensor& y, const Tensor& a, int64_t modalities, int64_t groups, int64_t shift,
                       const std::vector<int64_t>& receivers) {
  const char* op = "pixel_shift_add";
  ops::check_compatible(op, y, a);
  ops::check_floating(op, y);
  pixel_shift_add_shape(y.shape(), a.shape(), modalities, groups, shift, receivers);
  int64_t batch = per_modality_batch(op, y, modalities);
  auto receives = receiver_mask(op, receivers, modalities);
  int64_t rows = y.size(0), channels = y.size(1), height = y.size(2), width = y.size(3);
  int64_t group_size = channels / (groups + 1);
  const cpu::Exchange ex = make_exchange(receives, batch);
  // dst = base + PS(src) routed by the exchange; in the backward (base null) dst = the
  // adjoint of PS applied to src, routed back.
  auto kernel = [=](const Tensor* base, const Tensor& src, const Tensor& dst, bool backward) {
    ops::dispatch_floating(op, src.dtype(), [&]<typename T>() {
      MMF_KERNEL(src, pixel_shift_add, base ? base->data<T>() : nullptr, src.data<T>(), dst.data<T>(), rows, channels,
                 height, width, group_size, groups, shift, ex, backward);
    });
  };

  Tensor out = Tensor::empty(y.shape(), y.dtype(), y.device());
  kernel(&y, a, out, false);
  bool gy = y.requires_grad(), ga = a.requires_grad();
  autograd::record(op, {y, a}, {out}, [=](const TensorList& g) -> TensorList {
    Tensor da;
    if (ga) {
      da = Tensor::empty(g[0].shape(), g[0].dtype(), g[0].device());
      kernel(nullptr, g[0], da, true);
    }
    return {gy ? g[0] : Tensor(), da};
  });
  return out;
}

Tensor channel_gate(const Tensor& x, const Tensor& e, double gate_scale) {
  const char* op = "channel_gate";
  ops::check_compatible(op, x, e);
  ops::check_floating(op, x);
  MMF_CHECK(x.dim() >= 2, OpError, op, ": x must be [N, C, ...], got ", shape_str(x.shape()));
  MMF_CHECK(e.shape() == Shape({x.size(0), x.size(1)}), OpError, op, ": e ", shape_str(e.shape()),
            " must be [N, C] = [", x.size(0), ", ", x.size(1), "] for x ", shape_str(x.shape()));
  MMF_CHECK(gate_scale > 0 && std::isfinite(gate_scale), OpError, op, ": gate_scale must be > 0, got ", gate_scale);
  int64_t planes = e.numel(), inner = inner_size(x, planes);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
    MMF_KERNEL(x, channel_gate_forward, x.data<T>(), e.data<T>(), out.data<T>(), planes, inner, gate_scale);
  });
  bool gx = x.requires_grad(), ge = e.requires_grad();
  // x is needed only for de.
  autograd::record(op, {x, e}, {out}, [=, x = ge ? x.detach() : Tensor(), e = e.detach()](const TensorList& g) -> TensorList {
    Tensor dx = gx ? Tensor::empty(g[0].shape(), g[0].dtype(), g[0].device()) : Tensor();
    Tensor de = ge ? Tensor::empty(e.shape(), e.dtype(), e.device()) : Tensor();
    ops::dispatch_floating(op, e.dtype(), [&]<typename T>() {
      MMF_KERNEL(e, channel_gate_backward, ge ? x.data<T>() : nullptr, e.data<T>(), g[0].data<T>(),
                 gx ? dx.data<T>() : nullptr, ge ? de.data<T>() : nullptr, planes, inner, gate_scale);
    });
    return {dx, de};
  });
  return out;
}

Tensor modality_ensemble(const Tensor& logits, const Tensor& alpha, int64_t modalities, bool detach) {
  const char* op = "modality_ensemble";
  ops::check_compatible(op, logits, alpha);
  ops::check_floating(op, logits);
  int64_t batch = per_modality_batch(op, logits, modalities);
  MMF_CHECK(alpha.shape() == Shape{modalities}, OpError, op, ": alpha ", shape_str(alpha.shape()),
            " must be [", modalities, "] (one weight per modality)");
  Shape out_shape = logits.shape();
  out_shape[0] = batch;
  int64_t slice = shape_numel(out_shape);
  Tensor out = Tensor::empty(out_shape, logits.dtype(), logits.device());
  // softmax(alpha) on alpha's device (on a GPU by a one-thread kernel: the weights never visit
  // the host, so the op does not synchronise), saved for backward.
  Tensor weights = Tensor::empty({modalities}, DType::f64, logits.device());
  ops::dispatch_floating(op, logits.dtype(), [&]<typename T>() {
    MMF_KERNEL(logits, ensemble_weights, alpha.data<T>(), weights.data<double>(), modalities);
    MMF_KERNEL(logits, modality_ensemble_forward, logits.data<T>(), weights.data<double>(), out.data<T>(), modalities,
               slice);
  });
  bool glogits = !detach && logits.requires_grad(), galpha = alpha.requires_grad();
  // With detach the node does not see the logits' history at all (torch's logits.detach()).
  autograd::record(op, {detach ? logits.detach() : logits, alpha}, {out},
                   [=, logits = logits.detach()](const TensorList& g) -> TensorList {
    Tensor dlogits = glogits ? Tensor::empty(logits.shape(), logits.dtype(), logits.device()) : Tensor();
    Tensor dalpha = galpha ? Tensor::empty({modalities}, logits.dtype(), logits.device()) : Tensor();
    ops::dispatch_floating(op, logits.dtype(), [&]<typename T>() {
      MMF_KERNEL(logits, modality_ensemble_backward, logits.data<T>(), weights.data<double>(), g[0].data<T>(),
                 glogits ? dlogits.data<T>() : nullptr, galpha ? dalpha.data<T>() : nullptr, modalities, slice);
    });
    return {dlogits, dalpha};
  });
  return out;
}

// Stack, split and tile are copies through Tensor::copy_ and views, so they run on any device
// and dtype (on CUDA: device-to-device copies on the compute stream, nothing through the
// host).
Tensor modality_stack(const TensorList& xs) {
  const char* op = "modality_stack";
  MMF_CHECK(!xs.empty(), OpError, op, ": needs at least one tensor");
  for (size_t m = 0; m < xs.size(); ++m) {
    ops::check_defined(op, xs[m]);
    MMF_CHECK(xs[m].dim() >= 1, OpError, op, ": tensors need a batch dim, got ", shape_str(xs[m].shape()));
    MMF_CHECK(xs[m].shape() == xs[0].shape() && xs[m].dtype() == xs[0].dtype() && xs[m].device() == xs[0].device(),
              OpError, op, ": modality ", m, " is ", xs[m].str(), ", modality 0 is ", xs[0].str(),
              " (all must match)");
  }
  int64_t modalities = static_cast<int64_t>(xs.size()), batch = xs[0].size(0);
  Shape shape = xs[0].shape();
  shape[0] = modalities * batch;
  Tensor out = Tensor::empty(shape, xs[0].dtype(), xs[0].device());
  for (int64_t m = 0; m < modalities; ++m) out.narrow(m * batch, batch).copy_(xs[m]);
  autograd::record(op, xs, {out}, [modalities, batch](const TensorList& g) -> TensorList {
    TensorList grads;
    for (int64_t m = 0; m < modalities; ++m) grads.push_back(g[0].narrow(m * batch, batch));
    return grads;
  });
  return out;
}

TensorList modality_split(const Tensor& x, int64_t modalities) {
  ops::check_defined("modality_split", x);
  int64_t batch = per_modality_batch("modality_split", x, modalities);
  TensorList parts;
  for (int64_t m = 0; m < modalities; ++m) parts.push_back(x.narrow(m * batch, batch));
  return parts;
}

Tensor modality_tile(const Tensor& label, int64_t modalities) {
  const char* op = "modality_tile";
  ops::check_defined(op, label);
  MMF_CHECK(modalities >= 1, OpError, op, ": modalities must be >= 1, got ", modalities);
  MMF_CHECK(label.dim() >= 1, OpError, op, ": needs a batch dim, got ", shape_str(label.shape()));
  // Each copy's gradient slice flows to the same input; the engine sums them.
  return modality_stack(TensorList(static_cast<size_t>(modalities), label));
}

}  // namespace mmfuse
