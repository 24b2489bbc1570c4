// CPU loops of the elementwise family, templated on the element type and the functor.
#pragma once
#include <cstdint>
#include <vector>

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

template <typename T, typename Op>
void unary_backward(const T* x, const T* y, const T* g, T* dx, int64_t n, Op op) {
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    const Op f = op;
    for (int64_t i = b; i < e; ++i) dx[i] = f.backward(x[i], y[i], g[i]);
  });
}

// Broadcast binary op. out has `ndim` dims of sizes `shape`; a_strides/b_strides give each
// operand's element stride per output dim (0 where the operand is broadcast).
template <typename T, typename Op>
void binary_broadcast(const T* a, const T* b, T* out, const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& a_strides, const std::vector<int64_t>& b_strides,
                      Op op) {
  int64_t ndim = static_cast<int64_t>(shape.size());
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  if (ndim == 0) {
    if (n) out[0] = op(a[0], b[0]);
    return;
  }
  int64_t inner = shape[ndim - 1];
  int64_t as = a_strides[ndim - 1], bs = b_strides[ndim - 1];
  int64_t rows = inner ? n / inner : 0;
  parallel_for(rows, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(inner, 1)),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   // Offsets of row r in each operand.
                   int64_t rem = r, ao = 0, bo = 0;
                   for (int64_t d = ndim - 2; d >= 0; --d) {
                     int64_t idx = rem % shape[d];
                     rem /= shape[d];
                     ao += idx * a_strides[d];
                     bo += idx * b_strides[d];
                   }
                   T* o = out + r * inner;
                   const T* pa = a + ao;
                   const T* pb = b + bo;
                   for (int64_t i = 0; i < inner; ++i) o[i] = op(pa[i * as], pb[i * bs]);
                 }
               });
}

}  // namespace mmfuse::cpu
