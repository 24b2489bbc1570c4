// The strided block copy of the shape family (cuda/shape.h). The element type does not
// matter to a copy, so the kernel is instantiated per element width (1, 4, 8 and 16 bytes) and
// index type (32-bit when the box and both tensors have well under 2^31 elements), not per T.
#include <cstdint>
#include <vector>

#include "base/error.h"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/kernels.h"
#include "cuda/launch.h"
#include "cuda/shape.h"

namespace mmfuse::cuda {

namespace {

// A 16-byte unit of the vectorised path.
struct alignas(16) Bytes16 {
  uint32_t w[4];
};

template <int Bytes>
struct Unit;
template <> struct Unit<1> { using type = uint8_t; };
template <> struct Unit<4> { using type = uint32_t; };
template <> struct Unit<8> { using type = uint64_t; };
template <> struct Unit<16> { using type = Bytes16; };

// The merged box, outermost dim first, in units of the copied type. The innermost dim is
// last (it may have any strides; it is dense in the common cases).
template <typename I>
struct BoxPlan {
  int nd;
  I extent[kMaxKernelDims], src_stride[kMaxKernelDims], dst_stride[kMaxKernelDims];
};

template <typename U, typename I>
__global__ void copy_box_kernel(const U* __restrict__ src, U* __restrict__ dst, BoxPlan<I> p, I n) {
  for (I e = static_cast<I>(global_thread()); e < n; e += static_cast<I>(grid_threads())) {
    I rem = e, so = 0, dof = 0;
    for (int d = p.nd - 1; d >= 0; --d) {
      I i = rem % p.extent[d];
      rem /= p.extent[d];
      so += i * p.src_stride[d];
      dof += i * p.dst_stride[d];
    }
    dst[dof] = src[so];
  }
}

// Largest offset + 1 the plan touches (to choose the index width).
int64_t reach(const std::vector<cpu::BoxDim>& dims, bool source) {
  int64_t r = 1;
  for (const cpu::BoxDim& d : dims) r += (d.extent - 1) * (source ? d.src_stride : d.dst_stride);
  return r;
}

template <typename U, typename I>
void launch(const void* src, void* dst, const std::vector<cpu::BoxDim>& dims, int64_t n, int device) {
  BoxPlan<I> p{};
  p.nd = static_cast<int>(dims.size());
  for (size_t d = 0; d < dims.size(); ++d) {
    p.extent[d] = static_cast<I>(dims[d].extent);
    p.src_stride[d] = static_cast<I>(dims[d].src_stride);
    p.dst_stride[d] = static_cast<I>(dims[d].dst_stride);
  }
  copy_box_kernel<U, I><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(static_cast<const U*>(src),
                                                                            static_cast<U*>(dst), p, static_cast<I>(n));
  MMF_CUDA_CHECK_LAUNCH("copy_box", n, " units of ", sizeof(U), " bytes in ", dims.size(), " merged dims on cuda:",
                        device);
}

template <int Bytes>
void launch_width(const void* src, void* dst, const std::vector<cpu::BoxDim>& dims, int64_t n, int device) {
  using U = typename Unit<Bytes>::type;
  // 32-bit indices where they cannot overflow, the grid-stride step (< 2^25) included.
  constexpr int64_t kInt32 = (int64_t{1} << 31) - (int64_t{1} << 25);
  if (n < kInt32 && reach(dims, true) < kInt32 && reach(dims, false) < kInt32)
    launch<U, int32_t>(src, dst, dims, n, device);
  else
    launch<U, int64_t>(src, dst, dims, n, device);
}

}  // namespace

template <typename T>
void copy_box(const T* src, T* dst, const cpu::BoxCopy& box, int device) {
  int64_t src_base, dst_base;
  std::vector<cpu::BoxDim> dims;
  if (!cpu::plan_box(box, src_base, dst_base, dims)) return;
  src += src_base;
  dst += dst_base;
  if (dims.empty()) dims.push_back({1, 1, 1});  // a single element
  MMF_CHECK(dims.size() <= static_cast<size_t>(kMaxKernelDims), OpError, "copy_box: ", dims.size(),
            " dims after merging; a CUDA kernel takes at most ", kMaxKernelDims);
  int64_t n = 1;
  for (const cpu::BoxDim& d : dims) n *= d.extent;
  // 16-byte units: the innermost dim dense in both tensors, and every row start (and the
  // row length) a multiple of 16 bytes.
  constexpr int64_t W = 16 / sizeof(T);
  const cpu::BoxDim& inner = dims.back();
  bool vec = W > 1 && inner.src_stride == 1 && inner.dst_stride == 1 && inner.extent % W == 0 && aligned16(src) &&
             aligned16(dst);
  for (size_t d = 0; vec && d + 1 < dims.size(); ++d) vec = dims[d].src_stride % W == 0 && dims[d].dst_stride % W == 0;
  if (vec) {
    for (size_t d = 0; d + 1 < dims.size(); ++d) {
      dims[d].src_stride /= W;
      dims[d].dst_stride /= W;
    }
    dims.back().extent /= W;  // its strides stay 1 (one unit)
    return launch_width<16>(src, dst, dims, n / W, device);
  }
  launch_width<sizeof(T)>(src, dst, dims, n, device);
}

#define MMF_SHAPE(T) template void copy_box<T>(const T*, T*, const cpu::BoxCopy&, int);
MMF_SHAPE(float)
MMF_SHAPE(double)
MMF_SHAPE(int32_t)
MMF_SHAPE(int64_t)
MMF_SHAPE(uint8_t)
#undef MMF_SHAPE

}  // namespace mmfuse::cuda
