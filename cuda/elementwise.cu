// The elementwise family on CUDA: one templated map kernel serves every unary functor
// (forward and backward) and the equal-shape and scalar-operand binary cases, with 16-byte
// vector loads where every pointer is aligned; one N-d kernel serves general broadcasting
// (same indexing as core/cpu/elementwise.h). Plus fill and dtype conversion.
#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "base/error.h"
#include "base/geometry/broadcast.h"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/kernels.h"
#include "cuda/launch.h"

namespace mmfuse::cuda {

namespace {

template <typename T, int N>
struct Inputs {
  const T* p[N];
};

// out[i] = f(in_0[i], ..., in_{N-1}[i]). W > 1: elements [0, n/W*W) as W-wide vectors (all
// pointers 16-byte aligned, checked by the launcher), the rest one by one.
template <typename T, int N, int W, typename F>
__global__ void map_kernel(Inputs<T, N> in, T* __restrict__ out, int64_t n, F f) {
  const int64_t stride = grid_threads();
  const int64_t n_vec = n / W;
  for (int64_t i = global_thread(); i < n_vec; i += stride) {
    Vec<T, W> v[N];
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = reinterpret_cast<const Vec<T, W>*>(in.p[j])[i];
    Vec<T, W> r;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      T args[N];
#pragma unroll
      for (int j = 0; j < N; ++j) args[j] = v[j].v[k];
      r.v[k] = f(args);
    }
    reinterpret_cast<Vec<T, W>*>(out)[i] = r;
  }
  for (int64_t i = n_vec * W + global_thread(); i < n; i += stride) {
    T args[N];
#pragma unroll
    for (int j = 0; j < N; ++j) args[j] = in.p[j][i];
    out[i] = f(args);
  }
}

template <typename T, int N, typename F>
void launch_map(const char* kernel, const Inputs<T, N>& in, T* out, int64_t n, F f, int device) {
  if (n <= 0) return;
  cudaStream_t s = stream(device);
  constexpr int W = kVecWidth<T>;
  bool aligned = aligned16(out);
  for (int j = 0; j < N; ++j) aligned = aligned && aligned16(in.p[j]);
  if (aligned && n >= W) {
    map_kernel<T, N, W, F><<<grid_for(n / W), kBlockThreads, 0, s>>>(in, out, n, f);
  } else {
    map_kernel<T, N, 1, F><<<grid_for(n), kBlockThreads, 0, s>>>(in, out, n, f);
  }
  MMF_CUDA_CHECK_LAUNCH(kernel, n, " elements on cuda:", device);
}

template <typename Op>
struct UnaryForward {
  Op op;
  template <typename T>
  __device__ T operator()(const T (&a)[1]) const { return op.forward(a[0]); }
};
template <typename Op>
struct UnaryBackward {
  Op op;
  template <typename T>
  __device__ T operator()(const T (&a)[3]) const { return op.backward(a[0], a[1], a[2]); }
};
template <typename Op>
struct BinarySame {
  Op op;
  template <typename T>
  __device__ T operator()(const T (&a)[2]) const { return op(a[0], a[1]); }
};
// One operand is a single element (read from device memory: the host never waits for it).
template <typename Op, typename T>
struct BinaryScalar {
  Op op;
  const T* scalar;
  bool scalar_left;
  __device__ T operator()(const T (&a)[1]) const {
    T s = __ldg(scalar);
    return scalar_left ? op(s, a[0]) : op(a[0], s);
  }
};

// General broadcasting after dims were merged: out index -> operand offsets by mixed radix.
struct BroadcastGeometry {
  int ndim = 0;
  int64_t size[kMaxKernelDims];
  int64_t a_stride[kMaxKernelDims];
  int64_t b_stride[kMaxKernelDims];
};

// 32-bit index arithmetic where everything fits (divisions are several times cheaper).
template <typename T, typename Op, typename Index>
__global__ void broadcast_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out,
                                 int64_t n, BroadcastGeometry g, Op op) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    Index rem = static_cast<Index>(i), ao = 0, bo = 0;
    for (int d = g.ndim - 1; d >= 0; --d) {
      Index size = static_cast<Index>(g.size[d]);
      Index idx = rem % size;
      rem /= size;
      ao += idx * static_cast<Index>(g.a_stride[d]);
      bo += idx * static_cast<Index>(g.b_stride[d]);
    }
    out[i] = op(a[ao], b[bo]);
  }
}

// The merged dims of base/geometry/broadcast.h in the kernel's fixed arrays.
BroadcastGeometry merge_dims(const std::vector<int64_t>& shape, const std::vector<int64_t>& as,
                             const std::vector<int64_t>& bs) {
  const std::vector<cpu::BroadcastDim> dims = cpu::merge_broadcast_dims(shape, as, bs);
  MMF_CHECK(static_cast<int>(dims.size()) <= kMaxKernelDims, OpError, "broadcast: ", dims.size(),
            " dims after merging, CUDA kernels take at most ", kMaxKernelDims);
  BroadcastGeometry g;
  g.ndim = static_cast<int>(dims.size());
  for (int i = 0; i < g.ndim; ++i) {
    g.size[i] = dims[i].size;
    g.a_stride[i] = dims[i].a_stride;
    g.b_stride[i] = dims[i].b_stride;
  }
  return g;
}

}  // namespace

template <typename T, typename Op>
void unary_forward(const T* x, T* y, int64_t n, Op op, int device) {
  launch_map<T, 1>("unary_forward", Inputs<T, 1>{{x}}, y, n, UnaryForward<Op>{op}, device);
}

template <typename T, typename Op>
void unary_backward(const T* x, const T* y, const T* g, T* dx, int64_t n, Op op, int device) {
  launch_map<T, 3>("unary_backward", Inputs<T, 3>{{x, y, g}}, dx, n, UnaryBackward<Op>{op}, device);
}

template <typename T, typename Op>
void binary_broadcast(const T* a, const T* b, T* out, const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& a_strides, const std::vector<int64_t>& b_strides,
                      Op op, int device) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  if (n == 0) return;
  BroadcastGeometry g = merge_dims(shape, a_strides, b_strides);
  if (g.ndim == 0 || (g.ndim == 1 && g.a_stride[0] == 1 && g.b_stride[0] == 1)) {
    launch_map<T, 2>("binary_same_shape", Inputs<T, 2>{{a, b}}, out, n, BinarySame<Op>{op}, device);
    return;
  }
  if (g.ndim == 1 && g.a_stride[0] == 0 && g.b_stride[0] == 1) {
    launch_map<T, 1>("binary_scalar", Inputs<T, 1>{{b}}, out, n, BinaryScalar<Op, T>{op, a, true}, device);
    return;
  }
  if (g.ndim == 1 && g.a_stride[0] == 1 && g.b_stride[0] == 0) {
    launch_map<T, 1>("binary_scalar", Inputs<T, 1>{{a}}, out, n, BinaryScalar<Op, T>{op, b, false}, device);
    return;
  }
  cudaStream_t s = stream(device);
  if (n <= std::numeric_limits<int32_t>::max())
    broadcast_kernel<T, Op, uint32_t><<<grid_for(n), kBlockThreads, 0, s>>>(a, b, out, n, g, op);
  else
    broadcast_kernel<T, Op, int64_t><<<grid_for(n), kBlockThreads, 0, s>>>(a, b, out, n, g, op);
  MMF_CUDA_CHECK_LAUNCH("binary_broadcast", "output of ", n, " elements in ", g.ndim, " merged dims on cuda:", device);
}

// ---- fill and dtype conversion -------------------------------------------------------------

namespace {

template <typename T>
__global__ void fill_kernel(T* __restrict__ p, int64_t n, T value) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) p[i] = value;
}

template <typename S, typename D>
__global__ void convert_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) dst[i] = static_cast<D>(src[i]);
}

}  // namespace

void fill(void* dst, DType dtype, int64_t n, double value, int device) {
  if (n <= 0) return;
  cudaStream_t s = stream(device);
  visit_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    fill_kernel<T><<<grid_for(n), kBlockThreads, 0, s>>>(static_cast<T*>(dst), n, static_cast<T>(value));
  });
  MMF_CUDA_CHECK_LAUNCH("fill", n, " elements of ", dtype_name(dtype), " on cuda:", device);
}

void convert(const void* src, DType st, void* dst, DType dt, int64_t n, int device) {
  if (n <= 0) return;
  cudaStream_t s = stream(device);
  visit_dtype(st, [&](auto sz) {
    visit_dtype(dt, [&](auto dz) {
      using S = decltype(sz);
      using D = decltype(dz);
      convert_kernel<S, D><<<grid_for(n), kBlockThreads, 0, s>>>(static_cast<const S*>(src),
                                                                  static_cast<D*>(dst), n);
    });
  });
  MMF_CUDA_CHECK_LAUNCH("convert", n, " elements from ", dtype_name(st), " to ", dtype_name(dt),
                        " on cuda:", device);
}

// ---- explicit instantiations: every functor of base/elementwise_functors.h ----------

#define MMF_UNARY(T, Op)                                                                           \
  template void unary_forward<T, functors::Op>(const T*, T*, int64_t, functors::Op, int);          \
  template void unary_backward<T, functors::Op>(const T*, const T*, const T*, T*, int64_t,         \
                                                functors::Op, int);
#define MMF_BINARY(T, Op)                                                                          \
  template void binary_broadcast<T, functors::Op>(const T*, const T*, T*, const std::vector<int64_t>&, \
                                                  const std::vector<int64_t>&,                     \
                                                  const std::vector<int64_t>&, functors::Op, int);
#define MMF_ALL(T)                                                                                 \
  MMF_UNARY(T, Relu) MMF_UNARY(T, Pow) MMF_UNARY(T, Clamp) MMF_UNARY(T, Affine)                    \
  MMF_BINARY(T, Add) MMF_BINARY(T, Sub) MMF_BINARY(T, Mul) MMF_BINARY(T, Div)
MMF_ALL(float)
MMF_ALL(double)
// The parameterless unary ops, from their list.
#define MMF_UNARY_FLOAT(name, Op) MMF_UNARY(float, Op)
#define MMF_UNARY_DOUBLE(name, Op) MMF_UNARY(double, Op)
MMFUSE_UNARY_OPS(MMF_UNARY_FLOAT)
MMFUSE_UNARY_OPS(MMF_UNARY_DOUBLE)
#undef MMF_UNARY_DOUBLE
#undef MMF_UNARY_FLOAT
#undef MMF_ALL
#undef MMF_BINARY
#undef MMF_UNARY

}  // namespace mmfuse::cuda
