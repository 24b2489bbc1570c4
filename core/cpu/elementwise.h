// CPU loops of the elementwise family, templated on the element type and the functor.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "base/geometry/broadcast.h"
#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

constexpr int64_t kElementwiseGrain = 32768;

template <typename T, typename Op>
void unary_forward(const T* x, T* y, int64_t n, Op op) {
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    const Op f = op;  // a local copy: its fields (ReLU's slope) stay in registers, the loop vectorises
    for (int64_t i = b; i < e; ++i) y[i] = f.forward(x[i]);
  });
}

// dx may be g itself (the backward in place of a gradient nobody else holds).
template <typename T, typename Op>
void unary_backward(const T* x, const T* y, const T* g, T* dx, int64_t n, Op op) {
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    const Op f = op;
    for (int64_t i = b; i < e; ++i) dx[i] = f.backward(x[i], y[i], g[i]);
  });
}

// Broadcast binary op. out has `ndim` dims of sizes `shape`; a_strides/b_strides give each
// operand's element stride per output dim (0 where the operand is broadcast). The dims are
// merged first (base/geometry/broadcast.h): equal shapes, a scalar and a per-channel bias run as
// contiguous loops the compiler vectorises, and the offsets of a row follow from the previous
// row's instead of a division per dim.
template <typename T, typename Op>
void binary_broadcast(const T* a, const T* b, T* out, const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& a_strides, const std::vector<int64_t>& b_strides,
                      Op op) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  if (n == 0) return;
  const std::vector<BroadcastDim> dims = merge_broadcast_dims(shape, a_strides, b_strides);
  if (dims.empty()) {
    out[0] = op(a[0], b[0]);
    return;
  }
  const BroadcastDim inner = dims.back();
  // One run of `len` outputs along the innermost dim.
  auto run = [&](const T* pa, const T* pb, T* o, int64_t len) {
    const Op f = op;
    if (inner.a_stride == 1 && inner.b_stride == 1) {
      for (int64_t i = 0; i < len; ++i) o[i] = f(pa[i], pb[i]);
    } else if (inner.a_stride == 1 && inner.b_stride == 0) {
      const T vb = *pb;
      for (int64_t i = 0; i < len; ++i) o[i] = f(pa[i], vb);
    } else if (inner.a_stride == 0 && inner.b_stride == 1) {
      const T va = *pa;
      for (int64_t i = 0; i < len; ++i) o[i] = f(va, pb[i]);
    } else {
      for (int64_t i = 0; i < len; ++i) o[i] = f(pa[i * inner.a_stride], pb[i * inner.b_stride]);
    }
  };
  if (dims.size() == 1) {
    parallel_for(n, kElementwiseGrain, [&](int64_t i0, int64_t i1) {
      run(a + i0 * inner.a_stride, b + i0 * inner.b_stride, out + i0, i1 - i0);
    });
    return;
  }
  const int64_t outer = static_cast<int64_t>(dims.size()) - 1, rows = n / inner.size;
  parallel_for(rows, std::max<int64_t>(1, kElementwiseGrain / inner.size), [&](int64_t r0, int64_t r1) {
    // The index of row r0 along each outer dim, and its operand offsets; then an odometer.
    std::vector<int64_t> idx(static_cast<size_t>(outer));
    int64_t ao = 0, bo = 0;
    for (int64_t d = outer - 1, rem = r0; d >= 0; --d) {
      idx[d] = rem % dims[d].size;
      rem /= dims[d].size;
      ao += idx[d] * dims[d].a_stride;
      bo += idx[d] * dims[d].b_stride;
    }
    for (int64_t r = r0; r < r1; ++r) {
      run(a + ao, b + bo, out + r * inner.size, inner.size);
      for (int64_t d = outer - 1; d >= 0; --d) {
        ao += dims[d].a_stride;
        bo += dims[d].b_stride;
        if (++idx[d] < dims[d].size) break;
        ao -= dims[d].a_stride * dims[d].size;
        bo -= dims[d].b_stride * dims[d].size;
        idx[d] = 0;
      }
    }
  });
}

}  // namespace mmfuse::cpu
