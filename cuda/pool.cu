// Pooling and resizing on CUDA (cuda/pool.h). One thread per output element forward; one
// thread per input element backward (a gather in output order: deterministic, no atomics).
// Forward windows and sums follow core/cpu/pool.h operation for operation, so max pooling
// and average pooling agree with the CPU to the bit (up to FMA contraction in the resize
// weights).
#include <cstdint>
#include <vector>

#include "base/error.h"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/kernels.h"
#include "cuda/launch.h"
#include "cuda/pool.h"
#include "cuda/runtime.h"
#include "cuda/scratch.h"

namespace mmfuse::cuda {

namespace {

using cpu::avg_window;
using cpu::AvgWindow;
using cpu::Pool2dGeometry;
using cpu::ResizeGeometry;

// Outputs o in [first, last) along one axis whose (unclipped) window [o*stride - pad,
// o*stride - pad + kernel) contains input index i.
__device__ __forceinline__ void covering(int64_t i, int64_t stride, int64_t pad, int64_t kernel, int64_t out,
                                         int64_t& first, int64_t& last) {
  int64_t lo = i + pad - kernel + 1;  // o*stride >= lo
  first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
  last = min((i + pad) / stride + 1, out);
}

template <typename T>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ argmax,
                                        Pool2dGeometry g, int64_t n) {
  for (int64_t o = global_thread(); o < n; o += grid_threads()) {
    int64_t ow = o % g.out_w, t = o / g.out_w;
    int64_t oh = t % g.out_h, p = t / g.out_h;
    const T* xp = x + p * g.in_h * g.in_w;
    int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
    int64_t h1 = min(h0 + g.kernel_h, g.in_h), w1 = min(w0 + g.kernel_w, g.in_w);
    h0 = max(h0, int64_t{0});
    w0 = max(w0, int64_t{0});
    int64_t best = h0 * g.in_w + w0;
    T best_value = -INFINITY;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) {
        T v = xp[h * g.in_w + w];
        if (v > best_value || isnan(v)) {
          best_value = v;
          best = h * g.in_w + w;
        }
      }
    y[o] = best_value;
    argmax[o] = best;
  }
}

template <typename T>
__global__ void max_pool_backward_kernel(const T* __restrict__ gy, const int64_t* __restrict__ argmax,
                                         T* __restrict__ gx, Pool2dGeometry g, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t w = i % g.in_w, t = i / g.in_w;
    int64_t h = t % g.in_h, p = t / g.in_h;
    int64_t oh0, oh1, ow0, ow1;
    covering(h, g.stride_h, g.pad_h, g.kernel_h, g.out_h, oh0, oh1);
    covering(w, g.stride_w, g.pad_w, g.kernel_w, g.out_w, ow0, ow1);
    const int64_t self = h * g.in_w + w, base = p * g.out_h * g.out_w;
    T acc = T(0);
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        int64_t o = base + oh * g.out_w + ow;
        if (argmax[o] == self) acc += gy[o];
      }
    gx[i] = acc;
  }
}

template <typename T>
__global__ void avg_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, Pool2dGeometry g, int64_t n,
                                        bool include_pad) {
  for (int64_t o = global_thread(); o < n; o += grid_threads()) {
    int64_t ow = o % g.out_w, t = o / g.out_w;
    int64_t oh = t % g.out_h, p = t / g.out_h;
    const T* xp = x + p * g.in_h * g.in_w;
    AvgWindow win = avg_window(g, oh, ow, include_pad);
    T sum = 0;
    for (int64_t h = win.h0; h < win.h1; ++h)
      for (int64_t w = win.w0; w < win.w1; ++w) sum += xp[h * g.in_w + w];
    y[o] = win.divisor > 0 && win.h0 < win.h1 && win.w0 < win.w1 ? sum / static_cast<T>(win.divisor) : T(0);
  }
}

template <typename T>
__global__ void avg_pool_backward_kernel(const T* __restrict__ gy, T* __restrict__ gx, Pool2dGeometry g, int64_t n,
                                         bool include_pad) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t w = i % g.in_w, t = i / g.in_w;
    int64_t h = t % g.in_h, p = t / g.in_h;
    int64_t oh0, oh1, ow0, ow1;
    covering(h, g.stride_h, g.pad_h, g.kernel_h, g.out_h, oh0, oh1);
    covering(w, g.stride_w, g.pad_w, g.kernel_w, g.out_w, ow0, ow1);
    const int64_t base = p * g.out_h * g.out_w;
    T acc = T(0);
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        AvgWindow win = avg_window(g, oh, ow, include_pad);
        if (win.divisor <= 0 || h < win.h0 || h >= win.h1 || w < win.w0 || w >= win.w1) continue;
        acc += gy[base + oh * g.out_w + ow] / static_cast<T>(win.divisor);
      }
    gx[i] = acc;
  }
}

template <typename T>
__global__ void row_mean_backward_kernel(const T* __restrict__ gy, T* __restrict__ gx, int64_t n, int64_t inner) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) gx[i] = gy[i / inner] / static_cast<T>(inner);
}

// ---- separable resampling: out[p, a, b] = sum_k wa_k * (sum_j wb_j * in[p, ia_k, ib_j]) -----
// Each axis is a CSR table: for output index a, entries [offset[a], offset[a+1]) of (index,
// weight). The forward tables are the CPU's taps; the backward tables are their transposes
// (for input index i, every (output, weight) that read it, in output order).

template <typename T>
struct Table {
  std::vector<int64_t> offset, index;
  std::vector<T> weight;
};

template <typename T>
Table<T> transpose(const Table<T>& t, int64_t in_size) {
  Table<T> r;
  r.offset.assign(in_size + 1, 0);
  int64_t outs = static_cast<int64_t>(t.offset.size()) - 1;
  for (int64_t k = 0; k < t.offset.back(); ++k) ++r.offset[t.index[k] + 1];
  for (int64_t i = 0; i < in_size; ++i) r.offset[i + 1] += r.offset[i];
  r.index.resize(t.index.size());
  r.weight.resize(t.weight.size());
  std::vector<int64_t> fill(r.offset.begin(), r.offset.end() - 1);
  for (int64_t o = 0; o < outs; ++o)
    for (int64_t k = t.offset[o]; k < t.offset[o + 1]; ++k) {
      int64_t slot = fill[t.index[k]]++;
      r.index[slot] = o;
      r.weight[slot] = t.weight[k];
    }
  return r;
}

template <typename T>
Table<T> bilinear_table(int64_t in, int64_t out, bool align_corners, double scale) {
  Table<T> t;
  for (const auto& tap : cpu::linear_taps<T>(in, out, align_corners, scale)) {
    t.offset.push_back(static_cast<int64_t>(t.index.size()));
    t.index.push_back(tap.index0);
    t.weight.push_back(tap.weight0);
    t.index.push_back(tap.index1);
    t.weight.push_back(tap.weight1);
  }
  t.offset.push_back(static_cast<int64_t>(t.index.size()));
  return t;
}

template <typename T>
Table<T> nearest_table(int64_t in, int64_t out) {
  Table<T> t;
  for (int64_t src : cpu::nearest_sources(in, out)) {
    t.offset.push_back(static_cast<int64_t>(t.index.size()));
    t.index.push_back(src);
    t.weight.push_back(T(1));
  }
  t.offset.push_back(static_cast<int64_t>(t.index.size()));
  return t;
}

// The tables of both axes in one device buffer: offsets and indices as int64, weights as T.
template <typename T>
struct DeviceTables {
  const int64_t *off_a, *idx_a, *off_b, *idx_b;
  const T *w_a, *w_b;
};

template <typename T>
__global__ void separable_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t n, int64_t in_a, int64_t in_b,
                                 int64_t out_a, int64_t out_b, DeviceTables<T> t) {
  for (int64_t o = global_thread(); o < n; o += grid_threads()) {
    int64_t b = o % out_b, r = o / out_b;
    int64_t a = r % out_a, p = r / out_a;
    const T* plane = in + p * in_a * in_b;
    T acc = T(0);
    for (int64_t k = t.off_a[a]; k < t.off_a[a + 1]; ++k) {
      const T* row = plane + t.idx_a[k] * in_b;
      T inner = T(0);
      for (int64_t j = t.off_b[b]; j < t.off_b[b + 1]; ++j) inner += t.w_b[j] * row[t.idx_b[j]];
      acc += t.w_a[k] * inner;
    }
    out[o] = acc;
  }
}

template <typename T>
void run_separable(const char* name, const T* in, T* out, int64_t planes, int64_t in_a, int64_t in_b, int64_t out_a,
                   int64_t out_b, const Table<T>& ta, const Table<T>& tb, int device) {
  int64_t n = planes * out_a * out_b;
  if (n == 0) return;
  // One upload: [off_a | idx_a | off_b | idx_b] as int64, then [w_a | w_b] as T.
  std::vector<int64_t> ints;
  for (const auto* v : {&ta.offset, &ta.index, &tb.offset, &tb.index}) ints.insert(ints.end(), v->begin(), v->end());
  std::vector<T> weights(ta.weight);
  weights.insert(weights.end(), tb.weight.begin(), tb.weight.end());
  size_t int_bytes = ints.size() * sizeof(int64_t), w_bytes = weights.size() * sizeof(T);
  Scratch buffer(int_bytes + w_bytes, device);
  auto* base = buffer.get<char>();
  copy_to_device(base, ints.data(), int_bytes, device);
  copy_to_device(base + int_bytes, weights.data(), w_bytes, device);
  const auto* ip = reinterpret_cast<const int64_t*>(base);
  const auto* wp = reinterpret_cast<const T*>(base + int_bytes);
  DeviceTables<T> t;
  t.off_a = ip;
  t.idx_a = t.off_a + ta.offset.size();
  t.off_b = t.idx_a + ta.index.size();
  t.idx_b = t.off_b + tb.offset.size();
  t.w_a = wp;
  t.w_b = wp + ta.weight.size();
  separable_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(in, out, n, in_a, in_b, out_a, out_b, t);
  MMF_CUDA_CHECK_LAUNCH(name, planes, " planes ", in_a, "x", in_b, " -> ", out_a, "x", out_b, " on cuda:", device);
}

}  // namespace

template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* argmax, const Pool2dGeometry& g, int device) {
  int64_t n = g.planes * g.out_h * g.out_w;
  if (n == 0) return;
  max_pool_forward_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(x, y, argmax, g, n);
  MMF_CUDA_CHECK_LAUNCH("max_pool2d_forward", g.planes, " planes ", g.in_h, "x", g.in_w, " -> ", g.out_h, "x", g.out_w,
                        " on cuda:", device);
}

template <typename T>
void max_pool2d_backward(const T* gy, const int64_t* argmax, T* gx, const Pool2dGeometry& g, int device) {
  int64_t n = g.planes * g.in_h * g.in_w;
  if (n == 0) return;
  max_pool_backward_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(gy, argmax, gx, g, n);
  MMF_CUDA_CHECK_LAUNCH("max_pool2d_backward", g.planes, " planes ", g.in_h, "x", g.in_w, " -> ", g.out_h, "x",
                        g.out_w, " on cuda:", device);
}

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dGeometry& g, bool include_pad, int device) {
  int64_t n = g.planes * g.out_h * g.out_w;
  if (n == 0) return;
  avg_pool_forward_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(x, y, g, n, include_pad);
  MMF_CUDA_CHECK_LAUNCH("avg_pool2d_forward", g.planes, " planes ", g.in_h, "x", g.in_w, " -> ", g.out_h, "x", g.out_w,
                        " on cuda:", device);
}

template <typename T>
void avg_pool2d_backward(const T* gy, T* gx, const Pool2dGeometry& g, bool include_pad, int device) {
  int64_t n = g.planes * g.in_h * g.in_w;
  if (n == 0) return;
  avg_pool_backward_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(gy, gx, g, n, include_pad);
  MMF_CUDA_CHECK_LAUNCH("avg_pool2d_backward", g.planes, " planes ", g.in_h, "x", g.in_w, " -> ", g.out_h, "x",
                        g.out_w, " on cuda:", device);
}

template <typename T>
void row_mean_forward(const T* x, T* y, int64_t rows, int64_t inner, int device) {
  if (rows == 0) return;
  reduce_sum<T>(x, y, {rows, inner}, {false, true}, 1.0 / static_cast<double>(inner), device);
}

template <typename T>
void row_mean_backward(const T* gy, T* gx, int64_t rows, int64_t inner, int device) {
  int64_t n = rows * inner;
  if (n == 0) return;
  row_mean_backward_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(gy, gx, n, inner);
  MMF_CUDA_CHECK_LAUNCH("row_mean_backward", rows, " rows of ", inner, " on cuda:", device);
}

template <typename T>
void upsample_bilinear_forward(const T* x, T* y, const ResizeGeometry& g, bool align_corners, double scale_h,
                               double scale_w, int device) {
  run_separable<T>("upsample_bilinear_forward", x, y, g.planes, g.in_h, g.in_w, g.out_h, g.out_w,
                   bilinear_table<T>(g.in_h, g.out_h, align_corners, scale_h),
                   bilinear_table<T>(g.in_w, g.out_w, align_corners, scale_w), device);
}

template <typename T>
void upsample_bilinear_backward(const T* gy, T* gx, const ResizeGeometry& g, bool align_corners, double scale_h,
                                double scale_w, int device) {
  run_separable<T>("upsample_bilinear_backward", gy, gx, g.planes, g.out_h, g.out_w, g.in_h, g.in_w,
                   transpose(bilinear_table<T>(g.in_h, g.out_h, align_corners, scale_h), g.in_h),
                   transpose(bilinear_table<T>(g.in_w, g.out_w, align_corners, scale_w), g.in_w), device);
}

template <typename T>
void upsample_nearest_forward(const T* x, T* y, const ResizeGeometry& g, int device) {
  run_separable<T>("upsample_nearest_forward", x, y, g.planes, g.in_h, g.in_w, g.out_h, g.out_w,
                   nearest_table<T>(g.in_h, g.out_h), nearest_table<T>(g.in_w, g.out_w), device);
}

template <typename T>
void upsample_nearest_backward(const T* gy, T* gx, const ResizeGeometry& g, int device) {
  run_separable<T>("upsample_nearest_backward", gy, gx, g.planes, g.out_h, g.out_w, g.in_h, g.in_w,
                   transpose(nearest_table<T>(g.in_h, g.out_h), g.in_h),
                   transpose(nearest_table<T>(g.in_w, g.out_w), g.in_w), device);
}

#define MMF_POOL(T)                                                                                          \
  template void max_pool2d_forward<T>(const T*, T*, int64_t*, const Pool2dGeometry&, int);                  \
  template void max_pool2d_backward<T>(const T*, const int64_t*, T*, const Pool2dGeometry&, int);           \
  template void avg_pool2d_forward<T>(const T*, T*, const Pool2dGeometry&, bool, int);                      \
  template void avg_pool2d_backward<T>(const T*, T*, const Pool2dGeometry&, bool, int);                     \
  template void row_mean_forward<T>(const T*, T*, int64_t, int64_t, int);                                   \
  template void row_mean_backward<T>(const T*, T*, int64_t, int64_t, int);                                  \
  template void upsample_bilinear_forward<T>(const T*, T*, const ResizeGeometry&, bool, double, double, int); \
  template void upsample_bilinear_backward<T>(const T*, T*, const ResizeGeometry&, bool, double, double, int); \
  template void upsample_nearest_forward<T>(const T*, T*, const ResizeGeometry&, int);                      \
  template void upsample_nearest_backward<T>(const T*, T*, const ResizeGeometry&, int);
MMF_POOL(float)
MMF_POOL(double)
#undef MMF_POOL

}  // namespace mmfuse::cuda
