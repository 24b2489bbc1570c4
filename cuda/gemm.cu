// GEMM on CUDA through cuBLAS. Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T,
// so each call passes B before A with the sizes swapped (the usual transposition trick); no
// data is transposed. Float uses cublasSgemm*, whose tensor-core use follows the handle's math
// mode (set from the call's precision by DeviceContext::with_cublas, under its lock); double
// cublasDgemm*.
#include <climits>
#include <cstdint>

#include "base/error.h"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/gemm.h"
#include "cuda/launch.h"

namespace mmfuse::cuda {

namespace {

int to_int(int64_t v, const char* what) {
  MMF_CHECK(v >= 0 && v <= INT_MAX, OpError, "gemm on CUDA: ", what, " = ", v,
            " does not fit cuBLAS's 32-bit sizes");
  return static_cast<int>(v);
}

cublasOperation_t op_of(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                         const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                         float* C, int ldc) {
  return cublasSgemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                         const double* alpha, const double* A, int lda, const double* B, int ldb, const double* beta,
                         double* C, int ldc) {
  return cublasDgemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t gemm_strided_call(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                 const float* alpha, const float* A, int lda, long long sa, const float* B, int ldb,
                                 long long sb, const float* beta, float* C, int ldc, long long sc, int batch) {
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
}
cublasStatus_t gemm_strided_call(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                 const double* alpha, const double* A, int lda, long long sa, const double* B,
                                 int ldb, long long sb, const double* beta, double* C, int ldc, long long sc,
                                 int batch) {
  return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
}

template <typename T>
__global__ void scale_matrix_kernel(T* __restrict__ C, int64_t n, int64_t N, int64_t ldc, T beta) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    T& c = C[(i / N) * ldc + i % N];
    c = beta * c;
  }
}

// C (M x N, row stride ldc) = beta * C: what an empty sum of products leaves (K == 0, or a
// shared C over an empty batch), as cpu::gemm's scale_rows. beta == 0 writes zeros without
// reading C (NaN included); beta == 1 touches nothing.
template <typename T>
void scale_matrix(T* C, int64_t M, int64_t N, int64_t ldc, T beta, int device) {
  if (M == 0 || N == 0 || beta == T(1)) return;
  if (beta == T(0)) {
    MMF_CUDA_CHECK(cudaMemset2DAsync(C, ldc * sizeof(T), 0, N * sizeof(T), M, stream(device)));
    return;
  }
  const int64_t n = M * N;
  scale_matrix_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(C, n, N, ldc, beta);
  MMF_CUDA_CHECK_LAUNCH("gemm (C = beta * C)", M, " x ", N, ", ldc ", ldc, " on cuda:", device);
}

template <typename T>
__global__ void repeat_row_kernel(const T* __restrict__ row, int64_t n, int64_t cols, T* __restrict__ out) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = row[i % cols];
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc, int device, Precision precision) {
  if (M == 0 || N == 0) return;
  // An empty sum: cuBLAS would reject lda = 0, and the answer is beta * C anyway.
  if (K == 0) return scale_matrix(C, M, N, ldc, beta, device);
  const int m = to_int(N, "N"), n = to_int(M, "M"), k = to_int(K, "K");
  const int la = to_int(lda, "lda"), lb = to_int(ldb, "ldb"), lc = to_int(ldc, "ldc");
  context(device).with_cublas(precision, [&](cublasHandle_t h) {
    MMF_CUBLAS_CHECK(gemm_call(h, op_of(trans_b), op_of(trans_a), m, n, k, &alpha, B, lb, A, la, &beta, C, lc));
  });
}

template <typename T>
void gemm_batched(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K, T alpha,
                  const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta,
                  T* C, int64_t ldc, int64_t stride_c, int device, Precision precision) {
  if (M == 0 || N == 0) return;
  if (batch == 0) {
    // No products. A shared C is still the (empty) sum plus beta * C; separate Cs do not exist.
    if (stride_c == 0) scale_matrix(C, M, N, ldc, beta, device);
    return;
  }
  if (stride_c == 0 || K == 0) {
    // One C for the whole batch: products accumulated in batch order (deterministic), beta once.
    for (int64_t b = 0; b < batch; ++b)
      gemm<T>(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb,
              b == 0 || stride_c != 0 ? beta : T(1), C + b * stride_c, ldc, device, precision);
    return;
  }
  const int m = to_int(N, "N"), n = to_int(M, "M"), k = to_int(K, "K"), count = to_int(batch, "batch");
  const int la = to_int(lda, "lda"), lb = to_int(ldb, "ldb"), lc = to_int(ldc, "ldc");
  context(device).with_cublas(precision, [&](cublasHandle_t h) {
    MMF_CUBLAS_CHECK(gemm_strided_call(h, op_of(trans_b), op_of(trans_a), m, n, k, &alpha, B, lb, stride_b, A, la,
                                       stride_a, &beta, C, lc, stride_c, count));
  });
}

template <typename T>
void repeat_row(const T* row, int64_t rows, int64_t cols, T* out, int device) {
  int64_t n = rows * cols;
  if (n <= 0) return;
  repeat_row_kernel<T><<<grid_for(n), kBlockThreads, 0, stream(device)>>>(row, n, cols, out);
  MMF_CUDA_CHECK_LAUNCH("repeat_row", rows, " x ", cols, " on cuda:", device);
}

#define MMF_GEMM(T)                                                                                          \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*, \
                        int64_t, int, Precision);                                                            \
  template void gemm_batched<T>(bool, bool, int64_t, int64_t, int64_t, int64_t, T, const T*, int64_t, int64_t, \
                                const T*, int64_t, int64_t, T, T*, int64_t, int64_t, int, Precision);        \
  template void repeat_row<T>(const T*, int64_t, int64_t, T*, int);
MMF_GEMM(float)
MMF_GEMM(double)
#undef MMF_GEMM

}  // namespace mmfuse::cuda
