#include "core/ops/shape.h"

#include <algorithm>

#include "core/cpu/shape.h"
#include "core/ops/common.h"
#include "cuda/shape.h"

namespace mmfuse {

namespace {

// Shape ops move elements without arithmetic, so they run for every dtype.
template <typename F>
void dispatch_any(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::i32: return f.template operator()<int32_t>();
    case DType::i64: return f.template operator()<int64_t>();
    case DType::u8: return f.template operator()<uint8_t>();
  }
}

// A box covering all of `extent`, at the origin of both tensors, unit steps.
cpu::BoxCopy make_box(const Shape& extent, const Shape& src_shape, const Shape& dst_shape) {
  size_t nd = extent.size();
  return {extent, src_shape, Shape(nd, 0), Shape(nd, 1), dst_shape, Shape(nd, 0), Shape(nd, 1)};
}

// The one kernel of the family, on the CPU or on the device both tensors live on (the
// callers make them share dtype and device).
void run_box(const Tensor& src, const Tensor& dst, const cpu::BoxCopy& box) {
  dispatch_any(src.dtype(), [&]<typename T>() { MMF_KERNEL(src, copy_box, src.data<T>(), dst.data<T>(), box); });
}

int64_t wrap_nonscalar_dim(const char* op, const Tensor& x, int64_t dim) {
  MMF_CHECK(x.dim() > 0, OpError, op, ": needs a tensor with at least one dim, got shape ", shape_str(x.shape()));
  return ops::wrap_dim(op, dim, x.dim());
}

// The adjoint of slice: g scattered into zeros of `full` at start, start + step, ... along d.
Tensor slice_backward(const Tensor& g, const Shape& full, int64_t d, int64_t start, int64_t step) {
  const char* op = "slice_backward";
  Tensor out = Tensor::zeros(full, g.dtype(), g.device());
  cpu::BoxCopy box = make_box(g.shape(), g.shape(), full);
  box.dst_start[d] = start;
  box.dst_step[d] = step;
  run_box(g, out, box);
  int64_t length = g.size(d);
  autograd::record(op, {g}, {out}, [d, start, step, length](const TensorList& gg) -> TensorList {
    return {slice(gg[0], d, start, start + (length - 1) * step + 1, step)};
  });
  return out;
}

}  // namespace

Tensor concat(const TensorList& xs, int64_t dim) {
  const char* op = "concat";
  MMF_CHECK(!xs.empty(), OpError, "concat: needs at least one tensor");
  for (size_t i = 0; i < xs.size(); ++i) MMF_CHECK(xs[i].defined(), OpError, "concat: input ", i, " is undefined");
  const Tensor& first = xs[0];
  int64_t d = wrap_nonscalar_dim(op, first, dim);
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    MMF_CHECK(x.dtype() == first.dtype() && x.device() == first.device(), OpError, "concat: input ", i, " is ",
              x.str(), " but input 0 is ", first.str());
    bool match = x.dim() == first.dim();
    for (int64_t k = 0; match && k < x.dim(); ++k) match = k == d || x.size(k) == first.size(k);
    MMF_CHECK(match, OpError, "concat: input ", i, " has shape ", shape_str(x.shape()), " but input 0 has ",
              shape_str(first.shape()), " (shapes must match except in dim ", d, ")");
    sizes.push_back(x.size(d));
    out_shape[d] += sizes.back();
  }
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  int64_t at = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    cpu::BoxCopy box = make_box(xs[i].shape(), xs[i].shape(), out_shape);
    box.dst_start[d] = at;
    run_box(xs[i], out, box);
    at += sizes[i];
  }
  autograd::record(op, xs, {out}, [sizes, d](const TensorList& g) -> TensorList { return split(g[0], sizes, d); });
  return out;
}

TensorList split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  const char* op = "split";
  ops::check_defined(op, x);
  int64_t d = wrap_nonscalar_dim(op, x, dim);
  MMF_CHECK(!sizes.empty(), OpError, "split: needs at least one size");
  int64_t total = 0;
  for (int64_t s : sizes) {
    MMF_CHECK(s >= 0, OpError, "split: negative size in ", shape_str(sizes));
    total += s;
  }
  MMF_CHECK(total == x.size(d), OpError, "split: sizes ", shape_str(sizes), " sum to ", total, " but dim ", d,
            " of ", shape_str(x.shape()), " has size ", x.size(d));
  TensorList outs;
  int64_t at = 0;
  if (d == 0) {
    // Rows of the leading dim are contiguous: views, like narrow. The one split node below
    // carries their gradients.
    autograd::NoGradGuard no_grad;
    for (int64_t s : sizes) {
      outs.push_back(x.narrow(at, s));
      at += s;
    }
  } else {
    for (int64_t s : sizes) {
      Shape piece = x.shape();
      piece[d] = s;
      Tensor out = Tensor::empty(piece, x.dtype(), x.device());
      cpu::BoxCopy box = make_box(piece, x.shape(), piece);
      box.src_start[d] = at;
      run_box(x, out, box);
      outs.push_back(out);
      at += s;
    }
  }
  autograd::record(op, {x}, outs, [d](const TensorList& g) -> TensorList { return {concat(g, d)}; });
  return outs;
}

TensorList split_equal(const Tensor& x, int64_t parts, int64_t dim) {
  const char* op = "split";
  ops::check_defined(op, x);
  int64_t d = wrap_nonscalar_dim(op, x, dim);
  MMF_CHECK(parts >= 1 && x.size(d) % parts == 0, OpError, "split: dim ", d, " of ", shape_str(x.shape()),
            " does not split into ", parts, " equal parts");
  return split(x, std::vector<int64_t>(parts, x.size(d) / parts), d);
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  const char* op = "slice";
  ops::check_defined(op, x);
  int64_t d = wrap_nonscalar_dim(op, x, dim);
  MMF_CHECK(step >= 1, OpError, "slice: step must be positive, got ", step);
  int64_t n = x.size(d);
  auto clamp_index = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  int64_t s = clamp_index(start), e = clamp_index(end);
  Shape out_shape = x.shape();
  out_shape[d] = e > s ? (e - s + step - 1) / step : 0;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  cpu::BoxCopy box = make_box(out_shape, x.shape(), out_shape);
  box.src_start[d] = s;
  box.src_step[d] = step;
  run_box(x, out, box);
  autograd::record(op, {x}, {out}, [full = x.shape(), d, s, step](const TensorList& g) -> TensorList {
    return {slice_backward(g[0], full, d, s, step)};
  });
  return out;
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  const char* op = "pad";
  ops::check_defined(op, x);
  int64_t pairs = static_cast<int64_t>(pads.size() / 2);
  MMF_CHECK(pads.size() % 2 == 0, OpError, "pad: pads must hold (before, after) pairs, got ", pads.size(),
            " values");
  MMF_CHECK(pairs <= x.dim(), OpError, "pad: ", pairs, " (before, after) pairs for input of shape ",
            shape_str(x.shape()), " (at most one per dim)");
  Shape out_shape = x.shape();
  cpu::BoxCopy box = make_box(x.shape(), x.shape(), out_shape);
  for (int64_t k = 0; k < pairs; ++k) {
    int64_t d = x.dim() - 1 - k, before = pads[2 * k], after = pads[2 * k + 1], n = x.size(d);
    out_shape[d] = n + before + after;
    MMF_CHECK(out_shape[d] >= 0, OpError, "pad: pads (", before, ", ", after, ") of dim ", d,
              " leave a negative size for input of shape ", shape_str(x.shape()));
    // The part of x that survives: negative pads crop it, positive ones shift it.
    box.src_start[d] = std::max<int64_t>(0, -before);
    box.dst_start[d] = std::max<int64_t>(0, before);
    box.extent[d] = std::max<int64_t>(0, n - std::max<int64_t>(0, -before) - std::max<int64_t>(0, -after));
  }
  box.dst_shape = out_shape;
  Tensor out = Tensor::full(out_shape, value, x.dtype(), x.device());
  run_box(x, out, box);
  std::vector<int64_t> undo(pads.size());
  for (size_t i = 0; i < pads.size(); ++i) undo[i] = -pads[i];
  autograd::record(op, {x}, {out}, [undo](const TensorList& g) -> TensorList { return {pad(g[0], undo)}; });
  return out;
}

Tensor crop(const Tensor& x, const std::vector<int64_t>& offsets, const Shape& size) {
  const char* op = "crop";
  ops::check_defined(op, x);
  int64_t nd = x.dim();
  MMF_CHECK(static_cast<int64_t>(offsets.size()) == nd && static_cast<int64_t>(size.size()) == nd, OpError,
            "crop: input of shape ", shape_str(x.shape()), " needs ", nd, " offsets and ", nd, " sizes, got ",
            offsets.size(), " and ", size.size());
  std::vector<int64_t> pads;  // the adjoint: pad back, last dim first
  for (int64_t d = nd - 1; d >= 0; --d) {
    MMF_CHECK(offsets[d] >= 0 && size[d] >= 0 && offsets[d] + size[d] <= x.size(d), OpError,
              "crop: window [", offsets[d], ", ", offsets[d] + size[d], ") of dim ", d,
              " is outside input of shape ", shape_str(x.shape()));
    pads.push_back(offsets[d]);
    pads.push_back(x.size(d) - offsets[d] - size[d]);
  }
  Tensor out = Tensor::empty(size, x.dtype(), x.device());
  cpu::BoxCopy box = make_box(size, x.shape(), size);
  box.src_start = offsets;
  run_box(x, out, box);
  autograd::record(op, {x}, {out}, [pads](const TensorList& g) -> TensorList { return {pad(g[0], pads)}; });
  return out;
}

}  // namespace mmfuse
