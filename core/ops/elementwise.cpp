#include "core/ops/elementwise.h"

#include "base/elementwise_functors.h"
#include "core/cpu/elementwise.h"
#include "core/ops/common.h"
#include "core/ops/reduce.h"
#include "cuda/kernels.h"

namespace mmfuse {

using ops::dispatch_floating;

Shape broadcast_shape(const char* op, const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    MMF_CHECK(da == db || da == 1 || db == 1, OpError, op, ": shapes ", shape_str(a), " and ",
              shape_str(b), " cannot be broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

// Element strides of a contiguous operand of shape `in` seen through broadcast shape `out`.
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> strides(out.size(), 0);
  int64_t stride = 1;
  for (int64_t i = static_cast<int64_t>(in.size()) - 1; i >= 0; --i) {
    int64_t o = i + static_cast<int64_t>(out.size() - in.size());
    strides[o] = in[i] == 1 ? 0 : stride;
    stride *= in[i];
  }
  return strides;
}

template <typename Op>
Tensor binary_forward(const char* name, const Tensor& a, const Tensor& b, Op op) {
  ops::check_compatible(name, a, b);
  ops::check_floating(name, a);
  Shape shape = broadcast_shape(name, a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  auto as = broadcast_strides(a.shape(), shape), bs = broadcast_strides(b.shape(), shape);
  dispatch_floating(name, a.dtype(), [&]<typename T>() {
    MMF_KERNEL(a, binary_broadcast, a.data<T>(), b.data<T>(), out.data<T>(), shape, as, bs, op);
  });
  return out;
}

// Whether the backward may write its result into the incoming gradient `g`: on the CPU, nothing
// else holds g or its memory (the autograd engine hands each node the list it owns; a gradient
// also routed to another node, kept by a hook or a leaf, or viewed, is shared), and no graph is
// being recorded through the backward.
bool gradient_is_ours(const Tensor& g) {
  return !g.is_cuda() && !autograd::grad_enabled() && g.impl_ptr().use_count() == 1 &&
         g.unsafe_impl()->storage.use_count() == 1;
}

template <typename Op>
Tensor unary(const char* name, const Tensor& x, Op op) {
  ops::check_floating(name, x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_floating(name, x.dtype(),
                    [&]<typename T>() { MMF_KERNEL(x, unary_forward, x.data<T>(), y.data<T>(), x.numel(), op); });
  autograd::record(name, {x}, {y}, [name, op, x = x.detach(), y = y.detach()](const TensorList& g) -> TensorList {
    ops::check_compatible(name, x, g[0]);
    // Into g itself when nothing else holds it: each element is read before it is written.
    Tensor dx = gradient_is_ours(g[0]) ? g[0] : Tensor::empty(x.shape(), x.dtype(), x.device());
    dispatch_floating(name, x.dtype(), [&]<typename T>() {
      MMF_KERNEL(x, unary_backward, x.data<T>(), y.data<T>(), g[0].data<T>(), dx.data<T>(), x.numel(), op);
    });
    return {dx};
  });
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("add", a, b, functors::Add{});
  autograd::record("add", {a, b}, {out}, [sa = a.shape(), sb = b.shape()](const TensorList& g) -> TensorList {
    return {sum_to(g[0], sa), sum_to(g[0], sb)};
  });
  return out;
}

Tensor accumulate_gradient(Tensor existing, const Tensor& incoming) {
  if (!gradient_is_ours(existing) || existing.shape() != incoming.shape() || existing.dtype() != incoming.dtype() ||
      incoming.is_cuda())
    return add(existing, incoming);
  std::vector<int64_t> strides = broadcast_strides(existing.shape(), existing.shape());
  dispatch_floating("add", existing.dtype(), [&]<typename T>() {
    T* e = existing.data<T>();
    cpu::binary_broadcast(e, incoming.data<T>(), e, existing.shape(), strides, strides, functors::Add{});
  });
  return existing;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("sub", a, b, functors::Sub{});
  autograd::record("sub", {a, b}, {out}, [sa = a.shape(), sb = b.shape()](const TensorList& g) -> TensorList {
    return {sum_to(g[0], sa), neg(sum_to(g[0], sb))};
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("mul", a, b, functors::Mul{});
  bool ga = a.requires_grad(), gb = b.requires_grad();
  autograd::record("mul", {a, b}, {out}, [a = a.detach(), b = b.detach(), ga, gb](const TensorList& g) -> TensorList {
    return {ga ? sum_to(mul(g[0], b), a.shape()) : Tensor(), gb ? sum_to(mul(g[0], a), b.shape()) : Tensor()};
  });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("div", a, b, functors::Div{});
  bool gb = b.requires_grad();
  autograd::record("div", {a, b}, {out}, [out = out.detach(), sa = a.shape(), b = b.detach(), gb](const TensorList& g) -> TensorList {
    Tensor ga = div(g[0], b);
    // d(a/b)/db = -(a/b)/b
    return {sum_to(ga, sa), gb ? neg(sum_to(mul(ga, out), b.shape())) : Tensor()};
  });
  return out;
}

Tensor affine(const Tensor& x, double scale, double shift) { return unary("affine", x, functors::Affine{scale, shift}); }
Tensor relu(const Tensor& x, double negative_slope) { return unary("relu", x, functors::Relu{negative_slope}); }
#define MMF_DEFINE_UNARY(name, Functor) \
  Tensor name(const Tensor& x) { return unary(#name, x, functors::Functor{}); }
MMFUSE_UNARY_OPS(MMF_DEFINE_UNARY)
#undef MMF_DEFINE_UNARY
Tensor pow(const Tensor& x, double exponent) { return unary("pow", x, functors::Pow{exponent}); }
Tensor clamp(const Tensor& x, double min, double max) {
  MMF_CHECK(min <= max, OpError, "clamp: min ", min, " > max ", max);
  return unary("clamp", x, functors::Clamp{min, max});
}

}  // namespace mmfuse
