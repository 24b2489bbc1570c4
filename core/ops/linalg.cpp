#include "core/ops/linalg.h"

#include <algorithm>

#include "core/cpu/gemm.h"
#include "core/ops/common.h"
#include "core/ops/reduce.h"
#include "cuda/gemm.h"

namespace mmfuse {

namespace {

// The products of this family on the tensors' device: cpu::gemm* (OpenBLAS) or their cuBLAS
// twins cuda::gemm* (same arguments plus the device).
template <typename T>
struct Blas {
  Device device;
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
            int64_t ldb, T beta, T* C, int64_t ldc) const {
    MMF_KERNEL(device, gemm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void gemm_batched(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                    int64_t lda, int64_t sa, const T* B, int64_t ldb, int64_t sb, T beta, T* C, int64_t ldc,
                    int64_t sc) const {
    MMF_KERNEL(device, gemm_batched, ta, tb, batch, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc);
  }
  void repeat_row(const T* row, int64_t rows, int64_t cols, T* out) const {
    MMF_KERNEL(device, repeat_row, row, rows, cols, out);
  }
};

// A matmul seen as `batch` products (M x K)(K x N); stride 0 marks a 2-D operand that every
// item of the batch reuses.
struct MatmulPlan {
  int64_t batch = 1, M = 0, K = 0, N = 0, stride_a = 0, stride_b = 0;
  Shape out;
};

MatmulPlan matmul_plan(const Tensor& a, const Tensor& b) {
  const char* op = "matmul";
  ops::check_compatible(op, a, b);
  ops::check_floating(op, a);
  auto pair = [&] { return shape_str(a.shape()) + " x " + shape_str(b.shape()); };
  MMF_CHECK((a.dim() == 2 || a.dim() == 3) && (b.dim() == 2 || b.dim() == 3), OpError,
            "matmul: expects 2-d or 3-d operands, got ", pair());
  MatmulPlan p;
  p.M = a.size(-2);
  p.K = a.size(-1);
  p.N = b.size(-1);
  MMF_CHECK(b.size(-2) == p.K, OpError, "matmul: ", pair(), ": inner sizes ", p.K, " and ", b.size(-2),
            " differ");
  if (a.dim() == 3 && b.dim() == 3)
    MMF_CHECK(a.size(0) == b.size(0), OpError, "matmul: ", pair(), ": batch sizes ", a.size(0), " and ",
              b.size(0), " differ");
  if (a.dim() == 3) p.batch = a.size(0), p.stride_a = p.M * p.K;
  if (b.dim() == 3) p.batch = b.size(0), p.stride_b = p.K * p.N;
  p.out = {p.M, p.N};
  if (a.dim() == 3 || b.dim() == 3) p.out.insert(p.out.begin(), p.batch);
  return p;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  MatmulPlan p = matmul_plan(a, b);
  Tensor c = Tensor::empty(p.out, a.dtype(), a.device());
  ops::dispatch_floating("matmul", a.dtype(), [&]<typename T>() {
    Blas<T> blas{a.device()};
    if (p.stride_b == 0)  // b shared by the batch: stack a's rows into one product
      blas.gemm(false, false, p.batch * p.M, p.N, p.K, 1, a.data<T>(), p.K, b.data<T>(), p.N, 0, c.data<T>(), p.N);
    else
      blas.gemm_batched(false, false, p.batch, p.M, p.N, p.K, 1, a.data<T>(), p.K, p.stride_a, b.data<T>(), p.N,
                           p.stride_b, 0, c.data<T>(), p.N, p.M * p.N);
  });
  bool ga = a.requires_grad(), gb = b.requires_grad();
  autograd::record("matmul", {a, b}, {c},
                   [p, a = a.detach(), b = b.detach(), ga, gb](const TensorList& g) -> TensorList {
    const Tensor& dc = g[0];
    Tensor da = ga ? Tensor::empty(a.shape(), a.dtype(), a.device()) : Tensor();
    Tensor db = gb ? Tensor::empty(b.shape(), b.dtype(), b.device()) : Tensor();
    ops::dispatch_floating("matmul", dc.dtype(), [&]<typename T>() {
      Blas<T> blas{dc.device()};
      int64_t stride_c = p.M * p.N;
      // dA_i = dC_i B_i^T; a 2-D a (stride 0) sums over the batch.
      if (ga && p.stride_b == 0)
        blas.gemm(false, true, p.batch * p.M, p.K, p.N, 1, dc.data<T>(), p.N, b.data<T>(), p.N, 0, da.data<T>(), p.K);
      else if (ga)
        blas.gemm_batched(false, true, p.batch, p.M, p.K, p.N, 1, dc.data<T>(), p.N, stride_c, b.data<T>(), p.N,
                             p.stride_b, 0, da.data<T>(), p.K, p.stride_a);
      // dB_i = A_i^T dC_i; a 2-D b sums over the batch, which is one product over stacked rows.
      if (gb && p.stride_b == 0)
        blas.gemm(true, false, p.K, p.N, p.batch * p.M, 1, a.data<T>(), p.K, dc.data<T>(), p.N, 0, db.data<T>(), p.N);
      else if (gb)
        blas.gemm_batched(true, false, p.batch, p.K, p.N, p.M, 1, a.data<T>(), p.K, p.stride_a, dc.data<T>(), p.N,
                             stride_c, 0, db.data<T>(), p.N, p.stride_b);
    });
    return {da, db};
  });
  return c;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = "linear";
  ops::check_compatible(op, x, weight);
  ops::check_floating(op, x);
  MMF_CHECK(weight.dim() == 2, OpError, "linear: weight must be 2-d [out, in], got ", shape_str(weight.shape()));
  MMF_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), OpError, "linear: input ", shape_str(x.shape()),
            " has ", x.dim() >= 1 ? x.size(-1) : 0, " features, weight ", shape_str(weight.shape()), " expects ",
            weight.size(1));
  int64_t in = weight.size(1), out = weight.size(0);
  if (bias.defined()) {
    ops::check_compatible(op, x, bias);
    MMF_CHECK(bias.shape() == Shape{out}, OpError, "linear: bias ", shape_str(bias.shape()), " does not match weight ",
              shape_str(weight.shape()), " (expected [", out, "])");
  }
  Shape out_shape = x.shape();
  out_shape.back() = out;
  int64_t rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
    Blas<T> blas{x.device()};
    if (bias.defined()) blas.repeat_row(bias.data<T>(), rows, out, y.data<T>());
    blas.gemm(false, true, rows, out, in, 1, x.data<T>(), in, weight.data<T>(), in, bias.defined() ? 1 : 0,
                 y.data<T>(), out);
  });
  bool gx = x.requires_grad(), gw = weight.requires_grad(), gb = bias.defined() && bias.requires_grad();
  TensorList inputs = {x, weight};
  if (bias.defined()) inputs.push_back(bias);
  autograd::record(op, inputs, {y},
                   [x = gw ? x.detach() : Tensor(), x_shape = x.shape(), w = weight.detach(), rows, in, out, gx, gw, gb,
                    has_bias = bias.defined()](const TensorList& g) -> TensorList {
    const Tensor& dy = g[0];
    Tensor dx = gx ? Tensor::empty(x_shape, dy.dtype(), dy.device()) : Tensor();
    Tensor dw = gw ? Tensor::empty(w.shape(), dy.dtype(), dy.device()) : Tensor();
    ops::dispatch_floating("linear", dy.dtype(), [&]<typename T>() {
      Blas<T> blas{dy.device()};
      if (gx) blas.gemm(false, false, rows, in, out, 1, dy.data<T>(), out, w.data<T>(), in, 0, dx.data<T>(), in);
      if (gw) blas.gemm(true, false, out, in, rows, 1, dy.data<T>(), out, x.data<T>(), in, 0, dw.data<T>(), in);
    });
    TensorList grads = {dx, dw};
    if (has_bias) grads.push_back(gb ? sum(dy.reshape({rows, out}), {0}) : Tensor());
    return grads;
  });
  return y;
}

}  // namespace mmfuse
