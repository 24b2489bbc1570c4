// 2-D convolution on CUDA. Two paths with the same results up to summation order:
//  - cuDNN v9 (legacy convolution API, still shipped in v9): descriptors built per call, the
//    algorithm chosen once per (device, geometry, dtype, precision, direction, search mode)
//    with the cudnnGet*Algorithm_v7 heuristics (PyTorch's default, benchmark = False) or, when
//    set_conv_benchmark is on, by timing them (cudnnFind*AlgorithmEx), restricted to
//    deterministic algorithms (unless set_conv_deterministic is off) whose workspace fits the
//    limit, and cached for the process; the workspace comes from the caching allocator. The math type follows
//    cuda::conv_precision(): CUDNN_FMA_MATH (strict fp32) or CUDNN_DEFAULT_MATH (TF32 allowed),
//    asked of the heuristics, which answer with (algorithm, math type) pairs: the chosen pair's
//    math type is set on the descriptor for the workspace query and the execution.
//  - the fallback, where the build has no cuDNN or cuDNN refuses (no algorithm, sizes beyond
//    int, CUDNN_STATUS_NOT_SUPPORTED): per sample, im2col (one thread per column entry) and a
//    cuBLAS product batched over the groups; backward-data is the transposed product and a
//    col2im written as a gather (each image pixel sums its taps in a fixed order: no atomics);
//    backward-weight accumulates the per-sample products in batch order (beta = 1). Its cuBLAS
//    products run in the convolution precision, not the matmul one.
// The precision and search switches are read once per call: descriptors, cache key, search
// and fallback agree.
#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "base/error.h"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/conv.h"
#include "cuda/gemm.h"
#include "cuda/launch.h"
#include "cuda/precision.h"
#include "cuda/scratch.h"

namespace mmfuse::cuda {

namespace {

std::atomic<bool> g_force_fallback{false};
std::atomic<size_t> g_workspace_limit{size_t{1} << 30};
std::atomic<bool> g_benchmark{false};
std::atomic<bool> g_deterministic{true};
std::atomic<int64_t> g_fallback_count{0};

bool columns_are_image(const ConvGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

// The geometry fields as plain numbers, for kernel arguments (ConvGeometry's methods are host
// code).
struct Geo {
  int64_t C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW;
};
Geo geo_of(const ConvGeometry& g) {
  return {g.channels, g.height, g.width, g.out_height, g.out_width, g.kernel_h, g.kernel_w,
          g.stride_h, g.stride_w, g.pad_h,  g.pad_w,  g.dilation_h, g.dilation_w};
}

// cols[(c * KH*KW + ki * KW + kj) * L + oy * OW + ox] = plane_c[iy, ix] (0 in the padding) for
// the C channels of one sample.
template <typename T>
__global__ void im2col_kernel(const T* __restrict__ image, T* __restrict__ cols, Geo g, int64_t n) {
  const int64_t L = g.OH * g.OW;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t col = i % L, row = i / L;
    int64_t ox = col % g.OW, oy = col / g.OW;
    int64_t kj = row % g.KW, t = row / g.KW;
    int64_t ki = t % g.KH, c = t / g.KH;
    int64_t iy = oy * g.SH - g.PH + ki * g.DH, ix = ox * g.SW - g.PW + kj * g.DW;
    cols[i] = (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) ? image[(c * g.H + iy) * g.W + ix] : T(0);
  }
}

// The adjoint of im2col as a gather: pixel (c, iy, ix) sums, taps in (ki, kj) order, the column
// entries that read it (the CPU's col2im adds them in the same order).
template <typename T>
__global__ void col2im_kernel(const T* __restrict__ cols, T* __restrict__ image, Geo g, int64_t n) {
  const int64_t L = g.OH * g.OW;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t ix = i % g.W, t = i / g.W;
    int64_t iy = t % g.H, c = t / g.H;
    T acc = T(0);
    for (int64_t ki = 0; ki < g.KH; ++ki) {
      int64_t y = iy + g.PH - ki * g.DH;
      if (y < 0 || y % g.SH != 0) continue;
      int64_t oy = y / g.SH;
      if (oy >= g.OH) continue;
      for (int64_t kj = 0; kj < g.KW; ++kj) {
        int64_t x = ix + g.PW - kj * g.DW;
        if (x < 0 || x % g.SW != 0) continue;
        int64_t ox = x / g.SW;
        if (ox >= g.OW) continue;
        acc += cols[((c * g.KH + ki) * g.KW + kj) * L + oy * g.OW + ox];
      }
    }
    image[i] = acc;
  }
}

template <typename T>
__global__ void channel_bias_kernel(T* __restrict__ out, const T* __restrict__ bias, int64_t n, int64_t channels,
                                    int64_t area) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] += bias[(i / area) % channels];
}

template <typename T>
void im2col(const ConvGeometry& g, const T* image, T* cols, int device) {
  int64_t n = g.channels * g.kernel_area() * g.out_area();
  if (n == 0) return;
  im2col_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(image, cols, geo_of(g), n);
  MMF_CUDA_CHECK_LAUNCH("im2col", g.channels, " channels of ", g.height, "x", g.width, ", kernel ", g.kernel_h, "x",
                        g.kernel_w, " on cuda:", device);
}

template <typename T>
void col2im(const ConvGeometry& g, const T* cols, T* image, int device) {
  int64_t n = g.channels * g.image_area();
  if (n == 0) return;
  col2im_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(cols, image, geo_of(g), n);
  MMF_CUDA_CHECK_LAUNCH("col2im", g.channels, " channels of ", g.height, "x", g.width, ", kernel ", g.kernel_h, "x",
                        g.kernel_w, " on cuda:", device);
}

// ---- the fallback: im2col + cuBLAS -------------------------------------------------------------

template <typename T>
void fallback_forward(const ConvGeometry& g, const T* image, const T* weight, T* out, int device, Precision p) {
  int64_t L = g.out_area(), K = g.col_rows(), og = g.group_out_channels();
  bool direct = columns_are_image(g);
  Scratch buffer(direct ? 0 : sizeof(T) * g.channels * g.kernel_area() * L, device);
  for (int64_t n = 0; n < g.batch; ++n) {
    const T* sample = image + n * g.channels * g.image_area();
    const T* cols = sample;
    if (!direct) {
      im2col<T>(g, sample, buffer.get<T>(), device);
      cols = buffer.get<T>();
    }
    gemm_batched<T>(false, false, g.groups, og, L, K, T(1), weight, K, og * K, cols, L, K * L, T(0),
                    out + n * g.out_channels * L, L, og * L, device, p);
  }
}

template <typename T>
void fallback_backward_data(const ConvGeometry& g, const T* grad_out, const T* weight, T* grad_image, int device,
                            Precision p) {
  int64_t L = g.out_area(), K = g.col_rows(), og = g.group_out_channels();
  bool direct = columns_are_image(g);
  Scratch buffer(direct ? 0 : sizeof(T) * g.channels * g.kernel_area() * L, device);
  for (int64_t n = 0; n < g.batch; ++n) {
    T* sample = grad_image + n * g.channels * g.image_area();
    T* cols = direct ? sample : buffer.get<T>();
    gemm_batched<T>(true, false, g.groups, K, L, og, T(1), weight, K, og * K, grad_out + n * g.out_channels * L, L,
                    og * L, T(0), cols, L, K * L, device, p);
    if (!direct) col2im<T>(g, cols, sample, device);
  }
}

template <typename T>
void fallback_backward_weight(const ConvGeometry& g, const T* image, const T* grad_out, T* grad_weight, int device,
                              Precision p) {
  int64_t L = g.out_area(), K = g.col_rows(), og = g.group_out_channels();
  if (g.batch == 0 || L == 0) {
    MMF_CUDA_CHECK(cudaMemsetAsync(grad_weight, 0, sizeof(T) * g.out_channels * K, stream(device)));
    return;
  }
  bool direct = columns_are_image(g);
  Scratch buffer(direct ? 0 : sizeof(T) * g.channels * g.kernel_area() * L, device);
  for (int64_t n = 0; n < g.batch; ++n) {
    const T* sample = image + n * g.channels * g.image_area();
    const T* cols = sample;
    if (!direct) {
      im2col<T>(g, sample, buffer.get<T>(), device);
      cols = buffer.get<T>();
    }
    gemm_batched<T>(false, true, g.groups, og, K, L, T(1), grad_out + n * g.out_channels * L, L, og * L, cols, L,
                    K * L, n == 0 ? T(0) : T(1), grad_weight, K, og * K, device, p);
  }
}

// ---- cuDNN ---------------------------------------------------------------------------------

enum class Direction { forward, backward_data, backward_filter };

#ifdef MMFUSE_WITH_CUDNN

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc() { MMF_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};
struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc() { MMF_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d)); }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};
struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc() { MMF_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d)); }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

// The three descriptors of one call. `ok` is false when a size does not fit cuDNN's int or
// cuDNN rejects the geometry (CUDNN_STATUS_BAD_PARAM / NOT_SUPPORTED): the caller falls back.
struct Descriptors {
  TensorDesc image, out;
  FilterDesc filter;
  ConvDesc conv;
  bool ok = false;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // the one asked for (the precision's)
};

bool fits_int(const ConvGeometry& g) {
  for (int64_t v : {g.batch, g.channels, g.height, g.width, g.out_channels, g.out_height, g.out_width, g.kernel_h,
                    g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilation_h, g.dilation_w, g.groups})
    if (v > INT_MAX) return false;
  // cuDNN's legacy API indexes tensors with int as well.
  return g.batch * g.channels * g.image_area() <= INT_MAX && g.batch * g.out_channels * g.out_area() <= INT_MAX &&
         g.out_channels * g.col_rows() <= INT_MAX;
}

// Statuses that mean "cuDNN will not do this one": fall back instead of failing.
bool refusal(cudnnStatus_t s) { return s == CUDNN_STATUS_NOT_SUPPORTED || s == CUDNN_STATUS_BAD_PARAM; }

// The math type a precision asks for: strict fp32 forbids tensor cores; tf32 lets cuDNN use
// them for float. Double ignores it.
template <typename T>
cudnnMathType_t requested_math(Precision p) {
  return std::is_same_v<T, float> && p == Precision::fp32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
}

// Whether a heuristics candidate's math type keeps the precision asked for: under strict fp32
// only FMA math (PyTorch asserts the same of cuDNN's answers); never the down-conversion of
// float operands to half.
bool math_allowed(cudnnMathType_t requested, cudnnMathType_t candidate) {
  if (requested == CUDNN_FMA_MATH) return candidate == CUDNN_FMA_MATH;
  return candidate != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

template <typename T>
void make_descriptors(const ConvGeometry& g, Precision p, Descriptors& d) {
  if (!fits_int(g)) return;
  const cudnnDataType_t type = std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
  auto i = [](int64_t v) { return static_cast<int>(v); };
  cudnnStatus_t s = cudnnSetTensor4dDescriptor(d.image.d, CUDNN_TENSOR_NCHW, type, i(g.batch), i(g.channels),
                                               i(g.height), i(g.width));
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetTensor4dDescriptor(d.out.d, CUDNN_TENSOR_NCHW, type, i(g.batch), i(g.out_channels), i(g.out_height),
                                   i(g.out_width));
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetFilter4dDescriptor(d.filter.d, type, CUDNN_TENSOR_NCHW, i(g.out_channels), i(g.group_channels()),
                                   i(g.kernel_h), i(g.kernel_w));
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnSetConvolution2dDescriptor(d.conv.d, i(g.pad_h), i(g.pad_w), i(g.stride_h), i(g.stride_w),
                                        i(g.dilation_h), i(g.dilation_w), CUDNN_CROSS_CORRELATION, type);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetConvolutionGroupCount(d.conv.d, i(g.groups));
  // Set before the heuristics run: it tells them which kernels (tensor cores or not) to consider.
  d.math = requested_math<T>(p);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetConvolutionMathType(d.conv.d, d.math);
  if (refusal(s)) return;
  MMF_CUDNN_CHECK(s);
  // The output size cuDNN derives must be ours (it always is for a valid geometry).
  int dims[4];
  MMF_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(d.conv.d, d.image.d, d.filter.d, &dims[0], &dims[1], &dims[2],
                                                        &dims[3]));
  d.ok = dims[0] == g.batch && dims[1] == g.out_channels && dims[2] == g.out_height && dims[3] == g.out_width;
}

// The algorithm cache: one entry per (device, geometry, dtype, precision, direction, limit).
struct AlgoKey {
  std::array<int64_t, 20> v;
  bool operator<(const AlgoKey& o) const { return v < o.v; }
};
struct AlgoChoice {
  bool usable = false;  // false: cuDNN offered nothing suitable; use the fallback
  int algo = 0;
  size_t workspace = 0;
  // The math type the heuristics ranked this algorithm with: an algorithm runs the kernels of
  // the (algorithm, math type) pair, so the descriptor carries it for the workspace query and
  // the execution (cuDNN >= 7.5; see PyTorch's Note [behavior of cudnnFind and cudnnGet]).
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

std::mutex& cache_mutex() {
  static auto* m = new std::mutex;
  return *m;
}
std::map<AlgoKey, AlgoChoice>& algo_cache() {
  static auto* c = new std::map<AlgoKey, AlgoChoice>;  // leaked: used during static destruction
  return *c;
}

// The search switches as one call read them.
struct SearchMode {
  bool benchmark, deterministic;
};

// `p` and `mode` are what the call read once: a switch flipped by another thread meanwhile
// must not file a tf32 (or timed) choice under the fp32 (or heuristics) key.
template <typename T>
AlgoKey key_of(const ConvGeometry& g, Direction dir, int device, Precision p, SearchMode mode) {
  return {{g.batch, g.channels, g.height, g.width, g.out_channels, g.out_height, g.out_width, g.kernel_h, g.kernel_w,
           g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilation_h, g.dilation_w, g.groups,
           static_cast<int64_t>(sizeof(T)),
           static_cast<int64_t>(p) * 16 + static_cast<int64_t>(dir) + (mode.benchmark ? 256 : 0) +
               (mode.deterministic ? 512 : 0),
           device, static_cast<int64_t>(g_workspace_limit.load())}};
}

// The search, for one direction: `v7` asks cuDNN's heuristics for their ranked candidates,
// `find` (cudnnFind*AlgorithmEx) times every algorithm on the call's own buffers and returns
// them fastest first, `workspace_of` asks for an algorithm's workspace under the descriptor's
// current math type. The choice is the first candidate that succeeded, is deterministic (unless
// conv_deterministic() is off), keeps the requested precision and whose workspace fits the limit.
template <typename Perf, typename V7, typename Find, typename Ws>
struct Search {
  const Descriptors& d;
  int count;
  V7 v7;
  Find find;
  Ws workspace_of;
  bool deterministic;
  int device;

  bool allowed(const Perf& p) const {
    return p.status == CUDNN_STATUS_SUCCESS && (!deterministic || p.determinism == CUDNN_DETERMINISTIC) &&
           math_allowed(d.math, p.mathType);
  }
  // The workspace of candidate p (with its math type set on the descriptor), or false.
  bool fits(const Perf& p, size_t* ws) const {
    if (cudnnSetConvolutionMathType(d.conv.d, p.mathType) != CUDNN_STATUS_SUCCESS) return false;
    return workspace_of(p.algo, ws) == CUDNN_STATUS_SUCCESS && *ws <= g_workspace_limit.load();
  }
  AlgoChoice first_fit(const std::vector<Perf>& perf, int returned) const {
    for (int k = 0; k < returned; ++k) {
      size_t ws = 0;
      if (allowed(perf[k]) && fits(perf[k], &ws)) return {true, static_cast<int>(perf[k].algo), ws, perf[k].mathType};
    }
    return {};
  }
  // Leaves the descriptor's math type at the last candidate's: the caller sets the chosen one.
  AlgoChoice run(bool benchmark) const {
    std::vector<Perf> perf(count);
    int returned = 0;
    cudnnStatus_t s = v7(count, &returned, perf.data());
    if (refusal(s)) return {};
    MMF_CUDNN_CHECK(s);
    AlgoChoice heuristic = first_fit(perf, returned);
    if (!benchmark || !heuristic.usable) return heuristic;
    // The trials get the largest workspace any admissible candidate asks for (within the limit).
    size_t trial_ws = 0;
    for (int k = 0; k < returned; ++k) {
      size_t ws = 0;
      if (allowed(perf[k]) && fits(perf[k], &ws)) trial_ws = std::max(trial_ws, ws);
    }
    if (cudnnSetConvolutionMathType(d.conv.d, d.math) != CUDNN_STATUS_SUCCESS) return heuristic;
    Scratch workspace(trial_ws, device);
    std::vector<Perf> timed(count);
    returned = 0;
    s = find(workspace.get(), trial_ws, count, &returned, timed.data());
    if (s != CUDNN_STATUS_SUCCESS) return heuristic;  // e.g. out of memory for a trial: keep the heuristics' pick
    AlgoChoice fastest = first_fit(timed, returned);
    return fastest.usable ? fastest : heuristic;
  }
};
template <typename Perf, typename V7, typename Find, typename Ws>
AlgoChoice search(const Descriptors& d, int count, V7 v7, Find find, Ws ws, SearchMode mode, int device) {
  return Search<Perf, V7, Find, Ws>{d, count, v7, find, ws, mode.deterministic, device}.run(mode.benchmark);
}

// The buffers of the call, for the timed trials (which overwrite `result`).
struct Buffers {
  const void* image;
  const void* weight;
  const void* out;
  void* result;
};

AlgoChoice algorithm(cudnnHandle_t h, const Descriptors& d, Direction dir, const AlgoKey& key, SearchMode mode,
                     const Buffers& b, int device) {
  {
    std::lock_guard<std::mutex> lock(cache_mutex());
    auto it = algo_cache().find(key);
    if (it != algo_cache().end()) return it->second;
  }
  AlgoChoice c;
  switch (dir) {
    case Direction::forward:
      c = search<cudnnConvolutionFwdAlgoPerf_t>(
          d, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
          [&](int n, int* r, cudnnConvolutionFwdAlgoPerf_t* p) {
            return cudnnGetConvolutionForwardAlgorithm_v7(h, d.image.d, d.filter.d, d.conv.d, d.out.d, n, r, p);
          },
          [&](void* ws, size_t ws_size, int n, int* r, cudnnConvolutionFwdAlgoPerf_t* p) {
            return cudnnFindConvolutionForwardAlgorithmEx(h, d.image.d, b.image, d.filter.d, b.weight, d.conv.d,
                                                          d.out.d, b.result, n, r, p, ws, ws_size);
          },
          [&](cudnnConvolutionFwdAlgo_t a, size_t* ws) {
            return cudnnGetConvolutionForwardWorkspaceSize(h, d.image.d, d.filter.d, d.conv.d, d.out.d, a, ws);
          },
          mode, device);
      break;
    case Direction::backward_data:
      c = search<cudnnConvolutionBwdDataAlgoPerf_t>(
          d, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
          [&](int n, int* r, cudnnConvolutionBwdDataAlgoPerf_t* p) {
            return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.filter.d, d.out.d, d.conv.d, d.image.d, n, r, p);
          },
          [&](void* ws, size_t ws_size, int n, int* r, cudnnConvolutionBwdDataAlgoPerf_t* p) {
            return cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.filter.d, b.weight, d.out.d, b.out, d.conv.d,
                                                               d.image.d, b.result, n, r, p, ws, ws_size);
          },
          [&](cudnnConvolutionBwdDataAlgo_t a, size_t* ws) {
            return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.filter.d, d.out.d, d.conv.d, d.image.d, a, ws);
          },
          mode, device);
      break;
    case Direction::backward_filter:
      c = search<cudnnConvolutionBwdFilterAlgoPerf_t>(
          d, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
          [&](int n, int* r, cudnnConvolutionBwdFilterAlgoPerf_t* p) {
            return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.image.d, d.out.d, d.conv.d, d.filter.d, n, r, p);
          },
          [&](void* ws, size_t ws_size, int n, int* r, cudnnConvolutionBwdFilterAlgoPerf_t* p) {
            return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.image.d, b.image, d.out.d, b.out, d.conv.d,
                                                                 d.filter.d, b.result, n, r, p, ws, ws_size);
          },
          [&](cudnnConvolutionBwdFilterAlgo_t a, size_t* ws) {
            return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.image.d, d.out.d, d.conv.d, d.filter.d, a, ws);
          },
          mode, device);
      break;
  }
  std::lock_guard<std::mutex> lock(cache_mutex());
  algo_cache()[key] = c;
  return c;
}

void forget(const AlgoKey& key) {
  std::lock_guard<std::mutex> lock(cache_mutex());
  algo_cache()[key] = AlgoChoice{};
}

// Runs one direction through cuDNN; false when cuDNN refuses (the caller falls back).
template <typename T>
bool cudnn_run(const ConvGeometry& g, Direction dir, const T* image, const T* weight, const T* out, T* result,
               int device, Precision p) {
  if (g_force_fallback.load()) return false;
  Descriptors d;
  make_descriptors<T>(g, p, d);
  if (!d.ok) return false;
  cudnnHandle_t h = context(device).cudnn();
  const SearchMode mode{g_benchmark.load(), g_deterministic.load()};
  const AlgoKey key = key_of<T>(g, dir, device, p, mode);
  AlgoChoice c = algorithm(h, d, dir, key, mode, Buffers{image, weight, out, result}, device);
  if (!c.usable) return false;
  // The descriptor runs the chosen pair: the algorithm with the math type it was ranked with.
  cudnnStatus_t s = cudnnSetConvolutionMathType(d.conv.d, c.math);
  if (refusal(s)) {
    forget(key);
    return false;
  }
  MMF_CUDNN_CHECK(s);
  Scratch workspace(c.workspace, device);
  const T one = 1, zero = 0;
  switch (dir) {
    case Direction::forward:
      s = cudnnConvolutionForward(h, &one, d.image.d, image, d.filter.d, weight, d.conv.d,
                                  static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), workspace.get(), c.workspace, &zero,
                                  d.out.d, result);
      break;
    case Direction::backward_data:
      s = cudnnConvolutionBackwardData(h, &one, d.filter.d, weight, d.out.d, out, d.conv.d,
                                       static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), workspace.get(),
                                       c.workspace, &zero, d.image.d, result);
      break;
    case Direction::backward_filter:
      s = cudnnConvolutionBackwardFilter(h, &one, d.image.d, image, d.out.d, out, d.conv.d,
                                         static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), workspace.get(),
                                         c.workspace, &zero, d.filter.d, result);
      break;
  }
  if (refusal(s)) {
    forget(key);
    return false;
  }
  if (s != CUDNN_STATUS_SUCCESS)
    throw DeviceError(detail::concat("cuDNN convolution (direction ", static_cast<int>(dir), ", algorithm ", c.algo,
                                     ") failed for image [", g.batch, ", ", g.channels, ", ", g.height, ", ", g.width,
                                     "], output [", g.batch, ", ", g.out_channels, ", ", g.out_height, ", ",
                                     g.out_width, "], kernel ", g.kernel_h, "x", g.kernel_w, ", groups ", g.groups,
                                     " on cuda:", device, ": ", cudnnGetErrorString(s)));
  return true;
}

#else

template <typename T>
bool cudnn_run(const ConvGeometry&, Direction, const T*, const T*, const T*, T*, int, Precision) {
  return false;
}

#endif  // MMFUSE_WITH_CUDNN

bool empty_conv(const ConvGeometry& g) { return g.batch == 0 || g.channels == 0 || g.out_channels == 0; }

}  // namespace

template <typename T>
void conv_forward(const ConvGeometry& g, const T* image, const T* weight, T* out, int device) {
  int64_t n_out = g.batch * g.out_channels * g.out_area();
  if (n_out == 0) return;
  const Precision p = conv_precision();
  if (!empty_conv(g) && cudnn_run<T>(g, Direction::forward, image, weight, nullptr, out, device, p)) return;
  ++g_fallback_count;
  if (g.channels == 0) {
    MMF_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(T) * n_out, stream(device)));
    return;
  }
  fallback_forward<T>(g, image, weight, out, device, p);
}

template <typename T>
void conv_backward_data(const ConvGeometry& g, const T* grad_out, const T* weight, T* grad_image, int device) {
  int64_t n_image = g.batch * g.channels * g.image_area();
  if (n_image == 0) return;
  const Precision p = conv_precision();
  if (!empty_conv(g) && cudnn_run<T>(g, Direction::backward_data, nullptr, weight, grad_out, grad_image, device, p))
    return;
  ++g_fallback_count;
  if (g.out_channels == 0) {
    MMF_CUDA_CHECK(cudaMemsetAsync(grad_image, 0, sizeof(T) * n_image, stream(device)));
    return;
  }
  fallback_backward_data<T>(g, grad_out, weight, grad_image, device, p);
}

template <typename T>
void conv_backward_weight(const ConvGeometry& g, const T* image, const T* grad_out, T* grad_weight, int device) {
  if (g.out_channels * g.col_rows() == 0) return;
  const Precision p = conv_precision();
  if (!empty_conv(g) &&
      cudnn_run<T>(g, Direction::backward_filter, image, nullptr, grad_out, grad_weight, device, p))
    return;
  ++g_fallback_count;
  fallback_backward_weight<T>(g, image, grad_out, grad_weight, device, p);
}

template <typename T>
void add_channel_bias(T* out, const T* bias, int64_t batch, int64_t channels, int64_t area, int device) {
  int64_t n = batch * channels * area;
  if (n == 0) return;
  channel_bias_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(out, bias, n, channels, area);
  MMF_CUDA_CHECK_LAUNCH("add_channel_bias", "[", batch, ", ", channels, ", ", area, "] on cuda:", device);
}

void set_conv_force_fallback(bool on) { g_force_fallback.store(on); }
bool conv_force_fallback() { return g_force_fallback.load(); }
void set_conv_workspace_limit(size_t bytes) { g_workspace_limit.store(bytes); }
void set_conv_benchmark(bool on) { g_benchmark.store(on); }
bool conv_benchmark() { return g_benchmark.load(); }
void set_conv_deterministic(bool on) { g_deterministic.store(on); }
bool conv_deterministic() { return g_deterministic.load(); }
size_t conv_workspace_limit() { return g_workspace_limit.load(); }
size_t conv_algorithm_cache_size() {
#ifdef MMFUSE_WITH_CUDNN
  std::lock_guard<std::mutex> lock(cache_mutex());
  return algo_cache().size();
#else
  return 0;
#endif
}
int64_t conv_fallback_count() { return g_fallback_count.load(); }

#define MMF_CONV(T)                                                                           \
  template void conv_forward<T>(const ConvGeometry&, const T*, const T*, T*, int);            \
  template void conv_backward_data<T>(const ConvGeometry&, const T*, const T*, T*, int);      \
  template void conv_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*, int);    \
  template void add_channel_bias<T>(T*, const T*, int64_t, int64_t, int64_t, int);
MMF_CONV(float)
MMF_CONV(double)
#undef MMF_CONV

}  // namespace mmfuse::cuda
