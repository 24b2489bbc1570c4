// Softmax / log-softmax / cross-entropy / l1 / mse on CUDA (cuda/loss.h).
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "base/error.h"
#include "cuda/block_reduce.cuh"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/kernels.h"
#include "cuda/launch.h"
#include "cuda/loss.h"
#include "cuda/runtime.h"
#include "cuda/scratch.h"

namespace mmfuse::cuda {

namespace {

using cpu::LineGeometry;
using cpu::PointwiseLoss;

// The exact exp and log for the shared formulas: expf / exp by the argument's type, log in
// double.
struct ExactMath {
  template <typename V>
  MMF_HD static V exp(V x) {
    if constexpr (std::is_same_v<V, float>) return ::expf(x);
    else return ::exp(x);
  }
  MMF_HD static double log_sum(double sum) { return ::log(sum); }
};
// The formulas of base/geometry/loss.h, worked in double here (one thread per line or per
// element: no SIMD lanes of the input's type to keep).
using Rules = cpu::SoftmaxRules<double, ExactMath>;

// Line l = o * inner + i starts at o * dim * inner + i; consecutive d are inner apart.
__device__ __forceinline__ int64_t line_start(const LineGeometry& g, int64_t l) {
  return (l / g.inner) * g.dim * g.inner + l % g.inner;
}

// A line's max; *sum = its sum of exp(x - max), in double, in the CPU's order along the line.
template <typename T>
__device__ T line_max_sum(const T* base, const LineGeometry& g, double* sum) {
  T mx = base[0];
  for (int64_t d = 1; d < g.dim; ++d) mx = Rules::max_step(mx, base[d * g.inner]);
  double s = 0;
  for (int64_t d = 0; d < g.dim; ++d) s += static_cast<double>(Rules::exp_term(base[d * g.inner], mx));
  *sum = s;
  return mx;
}

template <typename T>
__global__ void softmax_forward_kernel(const T* __restrict__ x, T* __restrict__ y, LineGeometry g, int64_t lines,
                                       bool log) {
  for (int64_t l = global_thread(); l < lines; l += grid_threads()) {
    int64_t at = line_start(g, l);
    double sum;
    T mx = line_max_sum(x + at, g, &sum);
    // log: the line's log-sum-exp; softmax: 1 / sum.
    const double scale = log ? Rules::work(Rules::logsumexp(mx, sum)) : Rules::inv_sum(sum);
    for (int64_t d = 0; d < g.dim; ++d) {
      int64_t k = at + d * g.inner;
      y[k] = log ? Rules::log_softmax(x[k], scale)
                 : Rules::softmax<T>(Rules::exp_term(static_cast<double>(x[k]), static_cast<double>(mx)), scale);
    }
  }
}

template <typename T>
__global__ void softmax_backward_kernel(const T* __restrict__ y, const T* __restrict__ dy, T* __restrict__ dx,
                                        LineGeometry g, int64_t lines, bool log) {
  for (int64_t l = global_thread(); l < lines; l += grid_threads()) {
    int64_t at = line_start(g, l);
    double dot = 0;
    for (int64_t d = 0; d < g.dim; ++d) {
      int64_t k = at + d * g.inner;
      dot += log ? Rules::log_softmax_dot(dy[k]) : Rules::softmax_dot(dy[k], y[k]);
    }
    const double total = Rules::work(dot);
    for (int64_t d = 0; d < g.dim; ++d) {
      int64_t k = at + d * g.inner;
      dx[k] = log ? Rules::log_softmax_grad(y[k], dy[k], total) : Rules::softmax_grad(y[k], dy[k], total);
    }
  }
}

template <typename T>
__global__ void cross_entropy_forward_kernel(const T* __restrict__ logits, const int32_t* __restrict__ target,
                                             LineGeometry g, int64_t lines, int64_t ignore_index,
                                             double* __restrict__ lse, double* __restrict__ loss) {
  for (int64_t l = global_thread(); l < lines; l += grid_threads()) {
    const T* base = logits + line_start(g, l);
    double sum;
    T mx = line_max_sum(base, g, &sum);
    double v = Rules::logsumexp(mx, sum);
    lse[l] = v;
    loss[l] = Rules::cross_entropy_loss(base, g.inner, target[l], ignore_index, v);
  }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(const T* __restrict__ logits, const int32_t* __restrict__ target,
                                              const double* __restrict__ lse, LineGeometry g, int64_t n,
                                              int64_t ignore_index, const T* __restrict__ grad, bool per_position,
                                              double scale, T* __restrict__ dx) {
  for (int64_t k = global_thread(); k < n; k += grid_threads()) {
    int64_t i = k % g.inner, r = k / g.inner;
    int64_t d = r % g.dim, o = r / g.dim;
    int64_t p = o * g.inner + i;
    int32_t t = target[p];
    double coef = Rules::cross_entropy_coef(t, ignore_index, scale, per_position ? grad[p] : grad[0]);
    dx[k] = Rules::cross_entropy_grad(coef, logits[k], lse[p], t == d);
  }
}

// A warp's count of targets and its lowest bad index, folded by warp_reduce.
struct TargetAcc {
  unsigned long long counted, bad;
};
struct TargetOp {
  __device__ TargetAcc combine(TargetAcc a, TargetAcc b) const {
    return {a.counted + b.counted, b.bad < a.bad ? b.bad : a.bad};
  }
  __device__ TargetAcc shuffle_down(TargetAcc a, int delta) const {
    return {__shfl_down_sync(kFullWarp, a.counted, delta), __shfl_down_sync(kFullWarp, a.bad, delta)};
  }
};

// counts[0] += targets not ignored; counts[1] = min(first bad index) (all ones: none).
__global__ void check_targets_kernel(const int32_t* __restrict__ target, int64_t n, int64_t classes,
                                     int64_t ignore_index, unsigned long long* __restrict__ counts) {
  unsigned long long counted = 0, bad = ~0ull;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t t = target[i];
    if (t == ignore_index) continue;
    ++counted;
    if ((t < 0 || t >= classes) && static_cast<unsigned long long>(i) < bad) bad = static_cast<unsigned long long>(i);
  }
  const TargetAcc acc = warp_reduce(TargetAcc{counted, bad}, TargetOp{});
  if (threadIdx.x % 32 == 0) {
    if (acc.counted) atomicAdd(&counts[0], acc.counted);
    if (acc.bad != ~0ull) atomicMin(&counts[1], acc.bad);
  }
}

template <typename T>
__global__ void pointwise_loss_kernel(const T* __restrict__ x, const T* __restrict__ t, T* __restrict__ out, int64_t n,
                                      PointwiseLoss kind) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = pointwise_loss_value(kind, T(x[i] - t[i]));
}

template <typename T>
__global__ void pointwise_loss_backward_kernel(const T* __restrict__ x, const T* __restrict__ t,
                                               const T* __restrict__ grad, bool per_element, double scale,
                                               T* __restrict__ dx, T* __restrict__ dt, int64_t n, PointwiseLoss kind) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    T d = pointwise_loss_grad(kind, T(x[i] - t[i]), per_element ? grad[i] : grad[0], scale);
    if (dx) dx[i] = d;
    if (dt) dt[i] = -d;
  }
}

}  // namespace

template <typename T>
void softmax_forward(const T* x, T* y, const LineGeometry& geo, bool log, int device) {
  int64_t lines = geo.outer * geo.inner;
  if (geo.dim == 0 || lines == 0) return;
  softmax_forward_kernel<T><<<grid_for(lines), kBlockThreads, 0, stream(device)>>>(x, y, geo, lines, log);
  MMF_CUDA_CHECK_LAUNCH(log ? "log_softmax_forward" : "softmax_forward", "[", geo.outer, ", ", geo.dim, ", ",
                        geo.inner, "] on cuda:", device);
}

template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, const LineGeometry& geo, bool log, int device) {
  int64_t lines = geo.outer * geo.inner;
  if (geo.dim == 0 || lines == 0) return;
  softmax_backward_kernel<T><<<grid_for(lines), kBlockThreads, 0, stream(device)>>>(y, dy, dx, geo, lines, log);
  MMF_CUDA_CHECK_LAUNCH(log ? "log_softmax_backward" : "softmax_backward", "[", geo.outer, ", ", geo.dim, ", ",
                        geo.inner, "] on cuda:", device);
}

void cross_entropy_check_targets(const int32_t* target, int64_t n, int64_t classes, int64_t ignore_index,
                                 cpu::TargetCheck* result, int device) {
  *result = cpu::TargetCheck{};
  if (n <= 0) return;
  cudaStream_t s = stream(device);
  Scratch counts(2 * sizeof(unsigned long long), device);
  auto* c = counts.get<unsigned long long>();
  MMF_CUDA_CHECK(cudaMemsetAsync(c, 0, sizeof(unsigned long long), s));
  MMF_CUDA_CHECK(cudaMemsetAsync(c + 1, 0xff, sizeof(unsigned long long), s));
  check_targets_kernel<<<grid_for(n), kBlockThreads, 0, s>>>(target, n, classes, ignore_index, c);
  MMF_CUDA_CHECK_LAUNCH("cross_entropy_check_targets", n, " targets on cuda:", device);
  unsigned long long host[2];
  copy_to_host(host, c, sizeof host, device);
  result->counted = static_cast<int64_t>(host[0]);
  result->first_bad = host[1] == ~0ull ? -1 : static_cast<int64_t>(host[1]);
}

template <typename T>
void cross_entropy_forward(const T* logits, const int32_t* target, const LineGeometry& geo, int64_t ignore_index,
                           double* lse, double* loss, int device) {
  int64_t lines = geo.outer * geo.inner;
  if (geo.dim == 0 || lines == 0) return;
  cross_entropy_forward_kernel<T><<<grid_for(lines), kBlockThreads, 0, stream(device)>>>(logits, target, geo, lines,
                                                                                         ignore_index, lse, loss);
  MMF_CUDA_CHECK_LAUNCH("cross_entropy_forward", "[", geo.outer, ", ", geo.dim, ", ", geo.inner, "] on cuda:", device);
}

template <typename T>
void cross_entropy_total(const double* loss, int64_t positions, double divisor, T* out, int device) {
  // The deterministic reduction of cuda/reduce.cu (double accumulation), then the cast to T.
  if constexpr (std::is_same_v<T, double>) {
    reduce_sum<double>(loss, out, {positions}, {true}, 1.0 / divisor, device);
  } else {
    Scratch total(sizeof(double), device);
    reduce_sum<double>(loss, total.get<double>(), {positions}, {true}, 1.0 / divisor, device);
    convert(total.get<double>(), DType::f64, out, dtype_of<T>::value, 1, device);
  }
}

template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* target, const double* lse, const LineGeometry& geo,
                            int64_t ignore_index, const T* grad, bool grad_per_position, double scale, T* dx,
                            int device) {
  int64_t n = geo.outer * geo.dim * geo.inner;
  if (n == 0) return;
  cross_entropy_backward_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(
      logits, target, lse, geo, n, ignore_index, grad, grad_per_position, scale, dx);
  MMF_CUDA_CHECK_LAUNCH("cross_entropy_backward", "[", geo.outer, ", ", geo.dim, ", ", geo.inner, "] on cuda:", device);
}

template <typename T>
void pointwise_loss(const T* x, const T* t, T* out, int64_t n, PointwiseLoss kind, int device) {
  if (n <= 0) return;
  pointwise_loss_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(x, t, out, n, kind);
  MMF_CUDA_CHECK_LAUNCH("pointwise_loss", n, " elements on cuda:", device);
}

template <typename T>
void pointwise_loss_sum(const T* x, const T* t, T* out, int64_t n, PointwiseLoss kind, double divisor, int device) {
  Scratch values(sizeof(T) * static_cast<size_t>(n), device);
  pointwise_loss<T>(x, t, values.get<T>(), n, kind, device);
  // The deterministic reduction of cuda/reduce.cu (double accumulation), scaled by 1 / divisor;
  // n == 0 gives 0 * scale.
  reduce_sum<T>(values.get<T>(), out, {n}, {true}, 1.0 / divisor, device);
}

template <typename T>
void pointwise_loss_backward(const T* x, const T* t, const T* grad, bool grad_per_element, double scale, T* dx, T* dt,
                             int64_t n, PointwiseLoss kind, int device) {
  if (n <= 0) return;
  pointwise_loss_backward_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(x, t, grad, grad_per_element,
                                                                                      scale, dx, dt, n, kind);
  MMF_CUDA_CHECK_LAUNCH("pointwise_loss_backward", n, " elements on cuda:", device);
}

#define MMF_LOSS(T)                                                                                           \
  template void softmax_forward<T>(const T*, T*, const LineGeometry&, bool, int);                            \
  template void softmax_backward<T>(const T*, const T*, T*, const LineGeometry&, bool, int);                 \
  template void cross_entropy_forward<T>(const T*, const int32_t*, const LineGeometry&, int64_t, double*,    \
                                         double*, int);                                                      \
  template void cross_entropy_backward<T>(const T*, const int32_t*, const double*, const LineGeometry&,      \
                                          int64_t, const T*, bool, double, T*, int);                         \
  template void pointwise_loss<T>(const T*, const T*, T*, int64_t, PointwiseLoss, int);                      \
  template void pointwise_loss_sum<T>(const T*, const T*, T*, int64_t, PointwiseLoss, double, int);          \
  template void cross_entropy_total<T>(const double*, int64_t, double, T*, int);                             \
  template void pointwise_loss_backward<T>(const T*, const T*, const T*, bool, double, T*, T*, int64_t,      \
                                           PointwiseLoss, int);
MMF_LOSS(float)
MMF_LOSS(double)
#undef MMF_LOSS

}  // namespace mmfuse::cuda
