// A general reduction over any set of dims of a contiguous tensor. The input is seen as an
// outer index space (kept dims) times a reduced index space; both are flattened into offset
// tables, and each output element folds its reduced elements in a fixed order, so results
// are deterministic whatever the thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

struct ReducePlan {
  std::vector<int64_t> out_offsets;     // input offset of each output element's first element
  std::vector<int64_t> reduce_offsets;  // offsets within one reduction
};

// reduce_mask[d] says whether dim d is reduced.
inline ReducePlan make_reduce_plan(const std::vector<int64_t>& shape, const std::vector<bool>& reduce_mask) {
  int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<int64_t> strides(nd, 1);
  for (int64_t d = nd - 2; d >= 0; --d) strides[d] = strides[d + 1] * shape[d + 1];
  ReducePlan plan;
  plan.out_offsets = {0};
  plan.reduce_offsets = {0};
  for (int64_t d = 0; d < nd; ++d) {
    auto& table = reduce_mask[d] ? plan.reduce_offsets : plan.out_offsets;
    std::vector<int64_t> next;
    next.reserve(table.size() * shape[d]);
    for (int64_t base : table)
      for (int64_t i = 0; i < shape[d]; ++i) next.push_back(base + i * strides[d]);
    table = std::move(next);
  }
  return plan;
}

// out[o] = fold(init, x[out_offsets[o] + reduce_offsets[r]] for r in order).
template <typename T, typename Acc, typename Fold, typename Finish>
void reduce(const T* x, T* out, const ReducePlan& plan, Acc init, Fold fold, Finish finish) {
  int64_t n_out = static_cast<int64_t>(plan.out_offsets.size());
  int64_t n_red = static_cast<int64_t>(plan.reduce_offsets.size());
  parallel_for(n_out, std::max<int64_t>(1, 16384 / std::max<int64_t>(n_red, 1)), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const T* base = x + plan.out_offsets[o];
      Acc acc = init;
      for (int64_t r = 0; r < n_red; ++r) acc = fold(acc, base[plan.reduce_offsets[r]], r);
      out[o] = finish(acc);
    }
  });
}

// out[j] = scale * the sum of column j of x [rows, cols], accumulated in double over the rows in
// order (the order reduce() folds them in, so the same bits), row by row so that the reads are
// contiguous and the column sums vectorise. Columns are cut into fixed blocks run in parallel:
// the same bits for any thread count.
template <typename T>
void column_sum(const T* x, T* out, int64_t rows, int64_t cols, double scale = 1.0) {
  constexpr int64_t kBlock = 256;
  parallel_for(ceil_div(cols, kBlock), std::max<int64_t>(1, 16384 / std::max<int64_t>(rows * kBlock, 1)),
               [&](int64_t b0, int64_t b1) {
                 double acc[kBlock];
                 for (int64_t b = b0; b < b1; ++b) {
                   const int64_t j0 = b * kBlock, n = std::min(kBlock, cols - j0);
                   for (int64_t j = 0; j < n; ++j) acc[j] = 0;
                   for (int64_t r = 0; r < rows; ++r) {
                     const T* row = x + r * cols + j0;
                     for (int64_t j = 0; j < n; ++j) acc[j] += static_cast<double>(row[j]);
                   }
                   for (int64_t j = 0; j < n; ++j) out[j0 + j] = static_cast<T>(acc[j] * scale);
                 }
               });
}

// The twins of cuda::reduce_sum / reduce_max / max_backward (cuda/kernels.h), same arguments.
// out[o] = scale * the sum of its elements, accumulated in double. A reduction of the leading
// dims (a bias gradient: [N, ..., C] -> [C]) runs as column_sum, whose reads are contiguous
// where the offset plan's would stride across rows; the bits are the same.
template <typename T>
void reduce_sum(const T* x, T* out, const std::vector<int64_t>& shape, const std::vector<bool>& reduce_mask,
                double scale) {
  int64_t rows = 1, cols = 1;
  bool leading = true;  // every reduced dim (of size > 1) before every kept one
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (reduce_mask[d]) {
      leading = leading && cols == 1;
      rows *= shape[d];
    } else {
      cols *= shape[d];
    }
  }
  if (leading && rows > 1 && cols > 1) return column_sum(x, out, rows, cols, scale);
  reduce(x, out, make_reduce_plan(shape, reduce_mask), 0.0, [](double a, T v, int64_t) { return a + v; },
         [scale](double a) { return static_cast<T>(a * scale); });
}

// out[o] = the maximum; argmax[o] = the input offset of the first maximal element (strict >:
// ties keep the lowest offset). The reduction must not be empty.
template <typename T>
void reduce_max(const T* x, T* out, int64_t* argmax, const std::vector<int64_t>& shape,
                const std::vector<bool>& reduce_mask) {
  ReducePlan plan = make_reduce_plan(shape, reduce_mask);
  parallel_for(static_cast<int64_t>(plan.out_offsets.size()), 256, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t best = plan.out_offsets[o] + plan.reduce_offsets[0];
      for (int64_t off : plan.reduce_offsets) {
        int64_t i = plan.out_offsets[o] + off;
        if (x[i] > x[best]) best = i;
      }
      argmax[o] = best;
      out[o] = x[best];
    }
  });
}

// dx[argmax[o]] += g[o]; dx zeroed by the caller (distinct outputs have distinct argmax).
template <typename T>
void max_backward(const T* g, const int64_t* argmax, T* dx, int64_t n_out) {
  for (int64_t o = 0; o < n_out; ++o) dx[argmax[o]] += g[o];
}

}  // namespace mmfuse::cpu
