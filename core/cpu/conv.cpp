#include "core/cpu/conv.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/cpu/dnnl.h"
#include "core/cpu/gemm.h"
#include "core/cpu/parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mmfuse::cpu {

namespace {

// Output columns [first, last) whose input column ox*stride + offset lies inside [0, size).
void valid_range(int64_t offset, int64_t stride, int64_t size, int64_t out_size, int64_t& first, int64_t& last) {
  first = offset >= 0 ? 0 : ceil_div(-offset, stride);
  last = size - offset > 0 ? ceil_div(size - offset, stride) : 0;
  first = std::min(first, out_size);
  last = std::clamp(last, first, out_size);
}

constexpr int64_t kParallelGrain = 32768;  // elements
// Multiply-adds below which a convolution runs on one thread: waking threads costs more than a
// small convolution.
constexpr int64_t kParallelWork = int64_t{1} << 20;

// Whether to run `units` (samples or channel chunks) of a convolution on separate threads. It
// decides who computes a unit, never how: every product is the same gemm call either way.
bool split_among_threads(const ConvGeometry& g, int64_t units) {
  int64_t work = g.batch * g.out_channels * g.col_rows() * g.out_area();
  return units > 1 && units >= max_threads() && work >= kParallelWork;
}

// Planes per thread at least, so that small convolutions do not pay for waking threads.
int64_t plane_grain(const ConvGeometry& g) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, g.kernel_area() * g.out_area()));
}

// A 1x1 kernel with stride 1 and no padding needs no im2col: the image planes are the columns.
bool columns_are_image(const ConvGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

// Runs body(n, cols) for every sample n with a column buffer of col_rows() x out_area()
// elements. The samples run in parallel, one thread each, when there are at least as many as
// threads; otherwise one after another, with im2col and gemm's blocks parallel inside.
// Measured on the 2-core dev machine (OpenBLAS 0.3.21 pthreads, float32, x [8,64,32,32]
// w [64,64,3,3] pad 1, forward + dx + dw, the two runs back to back on a machine shared with
// other builds): 21-38 GFLOP/s this way against 12-21 GFLOP/s for im2col of the whole batch
// into [K, N*L] and one multithreaded gemm per group (whose strided im2col and BLAS/OpenMP
// thread contention cost more than the bigger gemm gains). bench/conv_cpu.cpp on the quiet
// machine: about 85-90 GFLOP/s.
template <typename T, typename F>
void for_each_sample(const ConvGeometry& g, F&& body) {
  int64_t size = columns_are_image(g) ? 0 : g.col_rows() * g.out_area();
  if (split_among_threads(g, g.batch)) {
    parallel_for(g.batch, 1, [&](int64_t b, int64_t e) {
      std::vector<T> cols(size);
      for (int64_t n = b; n < e; ++n) body(n, cols.data());
    });
    return;
  }
  std::vector<T> cols(size);
  for (int64_t n = 0; n < g.batch; ++n) body(n, cols.data());
}

// Channels [c0, c1) of sample n as columns: rows (c - c0) * kernel_area() + tap, ld out_area().
// Returns where they are (the image itself for a 1x1 kernel).
template <typename T>
const T* image_columns(const ConvGeometry& g, const T* image, int64_t n, int64_t c0, int64_t c1, T* cols) {
  const T* first = image + (n * g.channels + c0) * g.image_area();
  if (columns_are_image(g)) return first;
  int64_t L = g.out_area();
  parallel_for(c1 - c0, plane_grain(g), [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) im2col_plane(g, first + c * g.image_area(), cols + c * g.kernel_area() * L, L);
  });
  return cols;
}

}  // namespace

template <typename T>
void im2col_plane(const ConvGeometry& g, const T* plane, T* cols, int64_t ld) {
  for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
    for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
      T* row = cols + (ki * g.kernel_w + kj) * ld;
      int64_t off_x = kj * g.dilation_w - g.pad_w, x0, x1;
      valid_range(off_x, g.stride_w, g.width, g.out_width, x0, x1);
      for (int64_t oy = 0; oy < g.out_height; ++oy) {
        T* r = row + oy * g.out_width;
        int64_t iy = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
        if (iy < 0 || iy >= g.height) {
          std::fill(r, r + g.out_width, T(0));
          continue;
        }
        const T* src = plane + iy * g.width;
        std::fill(r, r + x0, T(0));
        if (g.stride_w == 1) std::copy(src + x0 + off_x, src + x1 + off_x, r + x0);
        else
          for (int64_t ox = x0; ox < x1; ++ox) r[ox] = src[ox * g.stride_w + off_x];
        std::fill(r + x1, r + g.out_width, T(0));
      }
    }
  }
}

template <typename T>
void col2im_plane(const ConvGeometry& g, const T* cols, int64_t ld, T* plane) {
  for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
    for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
      const T* row = cols + (ki * g.kernel_w + kj) * ld;
      int64_t off_x = kj * g.dilation_w - g.pad_w, x0, x1;
      valid_range(off_x, g.stride_w, g.width, g.out_width, x0, x1);
      for (int64_t oy = 0; oy < g.out_height; ++oy) {
        int64_t iy = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
        if (iy < 0 || iy >= g.height) continue;
        const T* r = row + oy * g.out_width;
        T* dst = plane + iy * g.width;
        for (int64_t ox = x0; ox < x1; ++ox) dst[ox * g.stride_w + off_x] += r[ox];
      }
    }
  }
}

// float32 goes to oneDNN where it is built and on (core/cpu/dnnl.h); it answers false for what
// it cannot do, and float64 (the gradient checks) never goes there.
template <typename T>
void conv_forward(const ConvGeometry& g, const T* image, const T* weight, T* out) {
  if constexpr (std::is_same_v<T, float>)
    if (dnnl_conv(ConvDirection::forward, g, image, weight, out)) return;
  int64_t L = g.out_area(), K = g.col_rows(), og = g.group_out_channels(), cg = g.group_channels();
  for_each_sample<T>(g, [&](int64_t n, T* buffer) {
    for (int64_t group = 0; group < g.groups; ++group) {
      const T* cols = image_columns(g, image, n, group * cg, (group + 1) * cg, buffer);
      gemm<T>(false, false, og, L, K, 1, weight + group * og * K, K, cols, L, 0,
              out + (n * g.out_channels + group * og) * L, L);
    }
  });
}

template <typename T>
void conv_backward_data(const ConvGeometry& g, const T* grad_out, const T* weight, T* grad_image) {
  if constexpr (std::is_same_v<T, float>)
    if (dnnl_conv(ConvDirection::backward_data, g, grad_out, weight, grad_image)) return;
  int64_t L = g.out_area(), K = g.col_rows(), og = g.group_out_channels(), cg = g.group_channels();
  bool direct = columns_are_image(g);
  for_each_sample<T>(g, [&](int64_t n, T* cols) {
    for (int64_t group = 0; group < g.groups; ++group) {
      const T* gout = grad_out + (n * g.out_channels + group * og) * L;
      T* planes = grad_image + (n * g.channels + group * cg) * g.image_area();
      if (direct) {
        gemm<T>(true, false, K, L, og, 1, weight + group * og * K, K, gout, L, 0, planes, L);
        continue;
      }
      gemm<T>(true, false, K, L, og, 1, weight + group * og * K, K, gout, L, 0, cols, L);
      parallel_for(cg, plane_grain(g), [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) {
          T* plane = planes + c * g.image_area();
          std::fill(plane, plane + g.image_area(), T(0));
          col2im_plane(g, cols + c * g.kernel_area() * L, L, plane);
        }
      });
    }
  });
}

// The weight gradient is computed by chunks of each group's input channels: a few, so that
// two threads share them evenly, about kWeightChunkWork multiply-adds or more per sample each
// (one BLAS call each: narrower products cost more per multiply-add) and kWeightChunkColumns
// columns or more where the layer has them. On the 2-core dev machine 8 chunks of 72 columns
// (x [8,64,32,32], w [64,64,3,3]) cost 10% more than one product per sample, 4 of 144 cost 4%.
constexpr int64_t kWeightChunkWork = int64_t{1} << 20;
constexpr int64_t kWeightChunkColumns = 128;

// Threads take whole chunks, not samples: each weight entry is summed over the batch in batch
// order by one thread. The chunks follow from the geometry only, so the products — and the
// bits of the result — are the same for any thread count.
template <typename T>
void conv_backward_weight(const ConvGeometry& g, const T* image, const T* grad_out, T* grad_weight) {
  if constexpr (std::is_same_v<T, float>)
    if (dnnl_conv(ConvDirection::backward_weight, g, image, grad_out, grad_weight)) return;
  int64_t L = g.out_area(), K = g.col_rows(), og = g.group_out_channels(), cg = g.group_channels();
  std::fill(grad_weight, grad_weight + g.out_channels * K, T(0));
  int64_t chunks = std::min({std::max<int64_t>(2, ceil_div(og * K * L, kWeightChunkWork)),
                             std::max<int64_t>(2, K / kWeightChunkColumns), cg});
  if (chunks > 2 && chunks % 2) --chunks;
  int64_t chunk_channels = ceil_div(cg, chunks);  // the widest chunk's channels
  auto chunk_range = [&](int64_t u_begin, int64_t u_end) {
    std::vector<T> buffer(columns_are_image(g) ? 0 : chunk_channels * g.kernel_area() * L);
    for (int64_t u = u_begin; u < u_end; ++u) {
      int64_t group = u / chunks, part = u % chunks;
      int64_t c0 = group * cg + cg * part / chunks, c1 = group * cg + cg * (part + 1) / chunks;
      for (int64_t n = 0; n < g.batch; ++n) {
        const T* cols = image_columns(g, image, n, c0, c1, buffer.data());
        gemm<T>(false, true, og, (c1 - c0) * g.kernel_area(), L, 1, grad_out + (n * g.out_channels + group * og) * L,
                L, cols, L, 1, grad_weight + group * og * K + (c0 - group * cg) * g.kernel_area(), K);
      }
    }
  };
  int64_t units = g.groups * chunks;
  if (split_among_threads(g, units)) parallel_for(units, 1, chunk_range);
  else chunk_range(0, units);
}

template <typename T>
void add_channel_bias(T* out, const T* bias, int64_t batch, int64_t channels, int64_t area) {
  parallel_for(batch * channels, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(area, 1)), [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; ++u) {
      T v = bias[u % channels];
      T* row = out + u * area;
      for (int64_t i = 0; i < area; ++i) row[i] += v;
    }
  });
}

#define MMF_CONV_INSTANTIATE(T)                                                                \
  template void im2col_plane<T>(const ConvGeometry&, const T*, T*, int64_t);                   \
  template void col2im_plane<T>(const ConvGeometry&, const T*, int64_t, T*);                   \
  template void conv_forward<T>(const ConvGeometry&, const T*, const T*, T*);                  \
  template void conv_backward_data<T>(const ConvGeometry&, const T*, const T*, T*);            \
  template void conv_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*);          \
  template void add_channel_bias<T>(T*, const T*, int64_t, int64_t, int64_t);
MMF_CONV_INSTANTIATE(float)
MMF_CONV_INSTANTIATE(double)
#undef MMF_CONV_INSTANTIATE

}  // namespace mmfuse::cpu
