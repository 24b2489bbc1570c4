// The fusion family on CUDA (cuda/fusion.h). Elementwise kernels take W elements per thread
// (one 16-byte load or store) where the run they walk is a multiple of W long and every
// pointer is 16-byte aligned, and index in 32 bits where the tensors have well under 2^31
// elements. Reductions follow cuda/reduce.cu: segments (row, chunk) with a cut that depends on
// the shape only, folded by a warp or a block in a fixed tree, partials folded in chunk
// order: bitwise reproducible, no atomics.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "base/error.h"
#include "cuda/block_reduce.cuh"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/fusion.h"
#include "cuda/launch.h"
#include "cuda/scratch.h"

namespace mmfuse::cuda {

namespace {

// 32-bit indices below this many elements: the grid-stride loop's last step (< 2^25 threads)
// must not overflow either.
constexpr int64_t kInt32Limit = (int64_t{1} << 31) - (int64_t{1} << 25);

// Calls go(width, index) with width = std::integral_constant<int, W> (the 16-byte vector width
// of T where `vec`, else 1) and index = an int32_t where `int32_fits`, else an int64_t.
template <typename T, typename Go>
void dispatch_width_index(bool vec, bool int32_fits, Go&& go) {
  constexpr int W = kVecWidth<T>;
  if (int32_fits) {
    if (vec) go(std::integral_constant<int, W>{}, int32_t{});
    else go(std::integral_constant<int, 1>{}, int32_t{});
  } else {
    if (vec) go(std::integral_constant<int, W>{}, int64_t{});
    else go(std::integral_constant<int, 1>{}, int64_t{});
  }
}

// Which row feeds which, and pixel shift's offsets: base/geometry/fusion.h, as the CPU loops.
using cpu::exchange_index;
using cpu::ExchangeIndex;
using cpu::giver_of;
using cpu::taker_of;

template <typename T, int W>
__device__ __forceinline__ Vec<T, W> load(const T* p) {
  return *reinterpret_cast<const Vec<T, W>*>(p);
}
template <typename T, int W>
__device__ __forceinline__ void store(T* p, const Vec<T, W>& v) {
  *reinterpret_cast<Vec<T, W>*>(p) = v;
}

// W elements per thread when `run` (the length no vector may straddle) is a multiple of W
// and every pointer is 16-byte aligned.
template <typename T>
bool can_vectorize(int64_t run, std::initializer_list<const void*> ptrs) {
  constexpr int64_t W = kVecWidth<T>;
  if (W <= 1 || run % W != 0) return false;
  for (const void* p : ptrs)
    if (p && !aligned16(p)) return false;
  return true;
}

// ---- channel shuffle ---------------------------------------------------------------------

// Unit u covers elements [u*W, u*W + W) of one plane (inner % W == 0).
template <typename T, int W, typename I>
__global__ void channel_shuffle_forward_kernel(const T* __restrict__ x, T* __restrict__ y, I units, I inner_units,
                                               I channels, I keep, ExchangeIndex<I> ex) {
  for (I u = static_cast<I>(global_thread()); u < units; u += static_cast<I>(grid_threads())) {
    I p = u / inner_units, i = u - p * inner_units;
    I b = p / channels, c = p - b * channels;
    I src = b;
    if (c >= keep) {
      I g = giver_of(ex, b);
      if (g >= 0) src = g;
    }
    store<T, W>(y + static_cast<int64_t>(u) * W, load<T, W>(x + (static_cast<int64_t>(src * channels + c) * inner_units + i) * W));
  }
}

template <typename T, int W, typename I>
__global__ void channel_shuffle_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx, I units, I inner_units,
                                                I channels, I keep, ExchangeIndex<I> ex) {
  for (I u = static_cast<I>(global_thread()); u < units; u += static_cast<I>(grid_threads())) {
    I p = u / inner_units, i = u - p * inner_units;
    I b = p / channels, c = p - b * channels;
    Vec<T, W> out;
    if (c < keep) {
      out = load<T, W>(dy + static_cast<int64_t>(u) * W);
    } else {
      I s0 = giver_of(ex, b) >= 0 ? I(-1) : b;  // b keeps its own channels
      I s1 = taker_of(ex, b);                   // b's channels went to its taker
      if (s0 >= 0 && s1 >= 0) {
        Vec<T, W> a = load<T, W>(dy + (static_cast<int64_t>(s0 * channels + c) * inner_units + i) * W);
        Vec<T, W> d = load<T, W>(dy + (static_cast<int64_t>(s1 * channels + c) * inner_units + i) * W);
#pragma unroll
        for (int k = 0; k < W; ++k) out.v[k] = a.v[k] + d.v[k];
      } else if (s0 >= 0 || s1 >= 0) {
        I s = s0 >= 0 ? s0 : s1;
        out = load<T, W>(dy + (static_cast<int64_t>(s * channels + c) * inner_units + i) * W);
      } else {
#pragma unroll
        for (int k = 0; k < W; ++k) out.v[k] = T(0);
      }
    }
    store<T, W>(dx + static_cast<int64_t>(u) * W, out);
  }
}

template <typename T, bool Backward>
void run_channel_shuffle(const T* in, T* out, int64_t rows, int64_t channels, int64_t inner, int64_t keep,
                         const Exchange& ex, int device) {
  const int64_t n = rows * channels * inner;
  if (n == 0) return;
  cudaStream_t s = stream(device);
  auto go = [&](auto w_tag, auto i_tag) {
    constexpr int W = decltype(w_tag)::value;
    using I = decltype(i_tag);
    const I units = static_cast<I>(n / W), inner_units = static_cast<I>(inner / W);
    if constexpr (Backward)
      channel_shuffle_backward_kernel<T, W, I><<<grid_for(units), kBlockThreads, 0, s>>>(
          in, out, units, inner_units, static_cast<I>(channels), static_cast<I>(keep), exchange_index<I>(ex));
    else
      channel_shuffle_forward_kernel<T, W, I><<<grid_for(units), kBlockThreads, 0, s>>>(
          in, out, units, inner_units, static_cast<I>(channels), static_cast<I>(keep), exchange_index<I>(ex));
  };
  dispatch_width_index<T>(can_vectorize<T>(inner, {in, out}), n < kInt32Limit, go);
  MMF_CUDA_CHECK_LAUNCH(Backward ? "channel_shuffle_backward" : "channel_shuffle_forward", rows, " rows x ",
                        channels, " channels x ", inner, ", keep ", keep, ", ", ex.modalities, " modalities on cuda:",
                        device);
}

// ---- pixel shift -------------------------------------------------------------------------

// Unit u covers output columns [j0, j0 + W) of one image row (width % W == 0).
template <typename T, int W, typename I>
__global__ void pixel_shift_add_kernel(const T* __restrict__ y, const T* __restrict__ a, T* __restrict__ out,
                                       I units, I channels, I height, I width, I group_size, I shifted, I shift,
                                       ExchangeIndex<I> ex, bool backward) {
  const I row_units = width / W;
  for (I u = static_cast<I>(global_thread()); u < units; u += static_cast<I>(grid_threads())) {
    I t = u / row_units, j0 = (u - t * row_units) * W;
    I p = t / height, i = t - p * height;
    I b = p / channels, c = p - b * channels;
    const int64_t o = static_cast<int64_t>(t) * width + j0;
    Vec<T, W> v;
    if (y) {
      v = load<T, W>(y + o);
    } else {
#pragma unroll
      for (int k = 0; k < W; ++k) v.v[k] = T(0);
    }
    I src = c < shifted ? (backward ? taker_of(ex, b) : giver_of(ex, b)) : I(-1);
    if (src >= 0) {
      // Direction q mod 4 (down, right, left, up), distance doubled per cycle of four groups;
      // the adjoint moves the other way.
      I dh, dw;
      cpu::pixel_shift_offset<I>(c / group_size, shift, dh, dw);
      if (backward) {
        dh = -dh;
        dw = -dw;
      }
      I si = i - dh;
      if (si >= 0 && si < height) {
        const T* arow = a + (static_cast<int64_t>(src * channels + c) * height + si) * width;
#pragma unroll
        for (int k = 0; k < W; ++k) {
          I sj = j0 + k - dw;
          if (sj >= 0 && sj < width) v.v[k] = v.v[k] + arow[sj];
        }
      }
    }
    store<T, W>(out + o, v);
  }
}

// ---- channel gate and the ensemble ---------------------------------------------------------

template <typename T>
__global__ void gate_kernel(const T* __restrict__ e, double* __restrict__ g, int64_t planes, double scale) {
  for (int64_t p = global_thread(); p < planes; p += grid_threads())
    g[p] = cpu::gate_value(e[p], scale);
}

// out[r, i] = T(s[r]) * x[r * x_row + i] for i < inner (x_row = inner, or 0: one row for all);
// unit u covers W elements of one row (inner % W == 0).
template <typename T, int W, typename I>
__global__ void scale_rows_kernel(const T* __restrict__ x, const double* __restrict__ s, T* __restrict__ out,
                                  I units, I inner_units, bool shared_row) {
  for (I u = static_cast<I>(global_thread()); u < units; u += static_cast<I>(grid_threads())) {
    I r = u / inner_units, i = u - r * inner_units;
    const T k = static_cast<T>(s[r]);
    Vec<T, W> v = load<T, W>(x + static_cast<int64_t>(shared_row ? i : u) * W);
#pragma unroll
    for (int j = 0; j < W; ++j) v.v[j] = k * v.v[j];
    store<T, W>(out + static_cast<int64_t>(u) * W, v);
  }
}

template <typename T>
void scale_rows(const T* x, const double* s, T* out, int64_t rows, int64_t inner, bool shared_row, int device,
                const char* name) {
  const int64_t n = rows * inner;
  if (n == 0) return;
  cudaStream_t st = stream(device);
  auto go = [&](auto w_tag, auto i_tag) {
    constexpr int W = decltype(w_tag)::value;
    using I = decltype(i_tag);
    const I units = static_cast<I>(n / W);
    scale_rows_kernel<T, W, I><<<grid_for(units), kBlockThreads, 0, st>>>(x, s, out, units, static_cast<I>(inner / W),
                                                                          shared_row);
  };
  dispatch_width_index<T>(can_vectorize<T>(inner, {x, out}), n < kInt32Limit, go);
  MMF_CUDA_CHECK_LAUNCH(name, rows, " rows of ", inner, " on cuda:", device);
}

// sums[r] = sum_i double(a[r * a_row + i]) * double(b[r * b_row + i]) over i < inner, and
// where out is given, out[r * inner + i] = T(s[r]) * a[r * a_row + i] in the same pass.
// Segment q = chunk * rows + r is folded by TPO threads (a warp or the block, group_reduce); one chunk
// writes sums directly, several leave partials that row_dot_partials_kernel folds in order.
template <typename T, int TPO>
__global__ void __launch_bounds__(kBlockThreads)
row_dot_kernel(const T* __restrict__ a, int64_t a_row, const T* __restrict__ b, int64_t b_row, int64_t rows,
               int64_t inner, int64_t chunk, int64_t n_chunks, const double* __restrict__ s, T* __restrict__ out,
               double* __restrict__ partial, double* __restrict__ sums) {
  constexpr int kGroups = kBlockThreads / TPO;
  const int lane = threadIdx.x % TPO;
  const int64_t segments = rows * n_chunks;
  // Every thread of a group runs the same iterations (the block-wide tree needs it).
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * kGroups + threadIdx.x / TPO; q < segments;
       q += static_cast<int64_t>(gridDim.x) * kGroups) {
    const int64_t r = q % rows, c = q / rows;
    const int64_t begin = c * chunk, end = min(inner, begin + chunk);
    const T* ar = a + r * a_row;
    const T* br = b + r * b_row;
    T* orow = out ? out + r * inner : nullptr;
    const T k = out ? static_cast<T>(s[r]) : T(0);
    double acc = 0;
    for (int64_t i = begin + lane; i < end; i += TPO) {
      const T av = ar[i];
      acc += static_cast<double>(av) * static_cast<double>(br[i]);
      if (orow) orow[i] = k * av;
    }
    acc = group_reduce<TPO>(acc, SumOp<double>{});
    if (lane == 0) {
      if (n_chunks == 1) sums[r] = acc;
      else partial[q] = acc;
    }
  }
}

__global__ void row_dot_partials_kernel(const double* __restrict__ partial, int64_t rows, int64_t n_chunks,
                                        double* __restrict__ sums) {
  for (int64_t r = global_thread(); r < rows; r += grid_threads()) {
    double acc = partial[r];
    for (int64_t c = 1; c < n_chunks; ++c) acc += partial[c * rows + r];
    sums[r] = acc;
  }
}

// The row dots into `sums` (device, rows doubles). The cut into chunks depends on rows and
// inner only (a fixed target of 2^18 threads, at least 8 elements per thread, at most 1024
// chunks), never on the GPU.
template <typename T>
void row_dot(const T* a, int64_t a_row, const T* b, int64_t b_row, int64_t rows, int64_t inner, const double* s,
             T* out, double* sums, int device, const char* name) {
  if (rows == 0) return;
  cudaStream_t st = stream(device);
  auto go = [&](auto tpo_tag) {
    constexpr int TPO = decltype(tpo_tag)::value;
    constexpr int64_t kTargetThreads = int64_t{1} << 18;
    constexpr int64_t kMinChunk = TPO * 8;
    int64_t n_chunks = 1;
    if (rows * TPO < kTargetThreads) {
      int64_t wanted = (kTargetThreads / TPO + rows - 1) / rows;
      int64_t most = (inner + kMinChunk - 1) / kMinChunk;
      n_chunks = std::clamp<int64_t>(std::min(wanted, most), 1, 1024);
    }
    int64_t chunk = std::max<int64_t>(1, (inner + n_chunks - 1) / n_chunks);
    n_chunks = std::max<int64_t>(1, (inner + chunk - 1) / chunk);
    Scratch partial(n_chunks > 1 ? sizeof(double) * rows * n_chunks : 0, device);
    constexpr int kGroups = kBlockThreads / TPO;
    row_dot_kernel<T, TPO><<<grid_for(rows * n_chunks, kGroups), kBlockThreads, 0, st>>>(
        a, a_row, b, b_row, rows, inner, chunk, n_chunks, s, out, partial.get<double>(), sums);
    MMF_CUDA_CHECK_LAUNCH(name, rows, " rows of ", inner, ", ", n_chunks, " chunks, ", TPO, " threads each, on cuda:",
                          device);
    if (n_chunks > 1) {
      row_dot_partials_kernel<<<grid_for(rows), kBlockThreads, 0, st>>>(partial.get<double>(), rows, n_chunks, sums);
      MMF_CUDA_CHECK_LAUNCH(name, " (partials) ", rows, " rows of ", n_chunks, " chunks on cuda:", device);
    }
  };
  if (inner <= 1024) go(std::integral_constant<int, 32>{});
  else go(std::integral_constant<int, kBlockThreads>{});
}

template <typename T>
__global__ void gate_grad_kernel(const double* __restrict__ sums, const double* __restrict__ g, T* __restrict__ de,
                                 int64_t planes, double scale) {
  for (int64_t p = global_thread(); p < planes; p += grid_threads())
    de[p] = static_cast<T>(cpu::gate_grad(sums[p], g[p], scale));
}

// softmax of alpha in the CPU's order (one thread).
template <typename T>
__global__ void ensemble_weights_kernel(const T* __restrict__ alpha, double* __restrict__ w, int64_t modalities) {
  if (global_thread() == 0) cpu::ensemble_weights_of(alpha, w, modalities);
}

template <typename T>
__global__ void ensemble_forward_kernel(const T* __restrict__ logits, const double* __restrict__ w,
                                        T* __restrict__ out, int64_t modalities, int64_t slice) {
  for (int64_t i = global_thread(); i < slice; i += grid_threads())
    out[i] = cpu::ensemble_mix(logits, w, modalities, slice, i);
}

// d alpha through the softmax, as the CPU (one thread).
template <typename T>
__global__ void ensemble_alpha_grad_kernel(const double* __restrict__ w, const double* __restrict__ dw,
                                           T* __restrict__ dalpha, int64_t modalities) {
  if (global_thread() == 0) cpu::ensemble_alpha_grad(w, dw, dalpha, modalities);
}

}  // namespace

template <typename T>
void channel_shuffle_forward(const T* x, T* y, int64_t rows, int64_t channels, int64_t inner, int64_t keep,
                             const Exchange& ex, int device) {
  run_channel_shuffle<T, false>(x, y, rows, channels, inner, keep, ex, device);
}

template <typename T>
void channel_shuffle_backward(const T* dy, T* dx, int64_t rows, int64_t channels, int64_t inner, int64_t keep,
                              const Exchange& ex, int device) {
  run_channel_shuffle<T, true>(dy, dx, rows, channels, inner, keep, ex, device);
}

template <typename T>
void pixel_shift_add(const T* y, const T* a, T* out, int64_t rows, int64_t channels, int64_t height, int64_t width,
                     int64_t group_size, int64_t groups, int64_t shift, const Exchange& ex, bool backward,
                     int device) {
  const int64_t n = rows * channels * height * width;
  if (n == 0) return;
  // The largest distance a group moves (shift * 2^(groups/4)) must fit the index type; a
  // move of a whole map or more only ever reads outside it, so clamp it there.
  const int64_t far = std::max(height, width);
  const int64_t shifted = groups * group_size;
  cudaStream_t s = stream(device);
  auto go = [&](auto w_tag, auto i_tag) {
    constexpr int W = decltype(w_tag)::value;
    using I = decltype(i_tag);
    const I units = static_cast<I>(n / W);
    pixel_shift_add_kernel<T, W, I><<<grid_for(units), kBlockThreads, 0, s>>>(
        y, a, out, units, static_cast<I>(channels), static_cast<I>(height), static_cast<I>(width),
        static_cast<I>(std::max<int64_t>(group_size, 1)), static_cast<I>(shifted),
        static_cast<I>(std::min(shift, far)), exchange_index<I>(ex), backward);
  };
  // far << 7 bounds every distance of 32 groups; with a margin it must fit int32 too.
  dispatch_width_index<T>(can_vectorize<T>(width, {y, out}), n < kInt32Limit && (far << 8) < kInt32Limit, go);
  MMF_CUDA_CHECK_LAUNCH(backward ? "pixel_shift_add_backward" : "pixel_shift_add", rows, " rows x ", channels,
                        " channels x ", height, " x ", width, ", ", groups, " groups of ", group_size, ", shift ",
                        shift, " on cuda:", device);
}

template <typename T>
void channel_gate_forward(const T* x, const T* e, T* y, int64_t planes, int64_t inner, double scale, int device) {
  if (planes == 0) return;
  Scratch gates(sizeof(double) * planes, device);
  gate_kernel<T><<<grid_for(planes), kBlockThreads, 0, stream(device)>>>(e, gates.get<double>(), planes, scale);
  MMF_CUDA_CHECK_LAUNCH("channel_gate (gates)", planes, " planes on cuda:", device);
  scale_rows<T>(x, gates.get<double>(), y, planes, inner, false, device, "channel_gate_forward");
}

template <typename T>
void channel_gate_backward(const T* x, const T* e, const T* dy, T* dx, T* de, int64_t planes, int64_t inner,
                           double scale, int device) {
  if (planes == 0 || (!dx && !de)) return;
  cudaStream_t s = stream(device);
  Scratch gates(sizeof(double) * planes, device);
  gate_kernel<T><<<grid_for(planes), kBlockThreads, 0, s>>>(e, gates.get<double>(), planes, scale);
  MMF_CUDA_CHECK_LAUNCH("channel_gate_backward (gates)", planes, " planes on cuda:", device);
  if (!de) return scale_rows<T>(dy, gates.get<double>(), dx, planes, inner, false, device, "channel_gate_backward");
  Scratch sums(sizeof(double) * planes, device);
  row_dot<T>(dy, inner, x, inner, planes, inner, gates.get<double>(), dx, sums.get<double>(), device,
             "channel_gate_backward");
  gate_grad_kernel<T><<<grid_for(planes), kBlockThreads, 0, s>>>(sums.get<double>(), gates.get<double>(), de, planes,
                                                                 scale);
  MMF_CUDA_CHECK_LAUNCH("channel_gate_backward (de)", planes, " planes on cuda:", device);
}

template <typename T>
void ensemble_weights(const T* alpha, double* weights, int64_t modalities, int device) {
  if (modalities == 0) return;
  ensemble_weights_kernel<T><<<1, 32, 0, stream(device)>>>(alpha, weights, modalities);
  MMF_CUDA_CHECK_LAUNCH("ensemble_weights", modalities, " modalities on cuda:", device);
}

template <typename T>
void modality_ensemble_forward(const T* logits, const double* weights, T* out, int64_t modalities, int64_t slice,
                               int device) {
  if (slice == 0) return;
  ensemble_forward_kernel<T><<<grid_for(slice), kBlockThreads, 0, stream(device)>>>(logits, weights, out, modalities,
                                                                                    slice);
  MMF_CUDA_CHECK_LAUNCH("modality_ensemble_forward", modalities, " modalities of ", slice, " on cuda:", device);
}

template <typename T>
void modality_ensemble_backward(const T* logits, const double* weights, const T* dout, T* dlogits, T* dalpha,
                                int64_t modalities, int64_t slice, int device) {
  if (modalities == 0) return;
  if (!dalpha) {
    if (dlogits)
      scale_rows<T>(dout, weights, dlogits, modalities, slice, true, device, "modality_ensemble_backward");
    return;
  }
  Scratch dw(sizeof(double) * modalities, device);
  // a = dout (one row shared by every modality), b = logits row m: the CPU's dout * logits.
  row_dot<T>(dout, 0, logits, slice, modalities, slice, weights, dlogits, dw.get<double>(), device,
             "modality_ensemble_backward");
  ensemble_alpha_grad_kernel<T><<<1, 32, 0, stream(device)>>>(weights, dw.get<double>(), dalpha, modalities);
  MMF_CUDA_CHECK_LAUNCH("modality_ensemble_backward (alpha)", modalities, " modalities on cuda:", device);
}

#define MMF_FUSION(T)                                                                                              \
  template void channel_shuffle_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, const Exchange&, int); \
  template void channel_shuffle_backward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, const Exchange&, int); \
  template void pixel_shift_add<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,   \
                                   int64_t, const Exchange&, bool, int);                                           \
  template void channel_gate_forward<T>(const T*, const T*, T*, int64_t, int64_t, double, int);                    \
  template void channel_gate_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t, double, int);     \
  template void ensemble_weights<T>(const T*, double*, int64_t, int);                                              \
  template void modality_ensemble_forward<T>(const T*, const double*, T*, int64_t, int64_t, int);                  \
  template void modality_ensemble_backward<T>(const T*, const double*, const T*, T*, T*, int64_t, int64_t, int);
MMF_FUSION(float)
MMF_FUSION(double)
#undef MMF_FUSION

}  // namespace mmfuse::cuda
