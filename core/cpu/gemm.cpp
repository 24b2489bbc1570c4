#include "core/cpu/gemm.h"

#include <cblas.h>

#include <limits>
#include <mutex>
#include <type_traits>

#include "core/cpu/parallel.h"
#include "core/error.h"

namespace mmfuse::cpu {

namespace {

// CBLAS takes int sizes (OpenBLAS built without INTERFACE64).
blasint blas_int(int64_t v, const char* what) {
  MMF_CHECK(v >= 0 && v <= std::numeric_limits<blasint>::max(), OpError, "gemm: ", what, " = ", v, " does not fit BLAS's 32-bit int");
  return static_cast<blasint>(v);
}

template <typename T>
void scale_rows(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  // An empty sum: BLAS would reject lda = 0, and the answer is beta * C anyway.
  if (K == 0 || alpha == T(0)) return scale_rows(M, N, beta, C, ldc);
  auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  blasint m = blas_int(M, "M"), n = blas_int(N, "N"), k = blas_int(K, "K");
  blasint la = blas_int(lda, "lda"), lb = blas_int(ldb, "ldb"), lc = blas_int(ldc, "ldc");
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, A, la, B, lb, beta, C, lc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, A, la, B, lb, beta, C, lc);
}

namespace {
std::mutex g_serial_mutex;
int g_serial_depth = 0;
int g_saved_threads = 1;
}  // namespace

SerialBlasScope::SerialBlasScope() {
  std::lock_guard<std::mutex> lock(g_serial_mutex);
  if (g_serial_depth++ == 0) {
    g_saved_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
  }
}

SerialBlasScope::~SerialBlasScope() {
  std::lock_guard<std::mutex> lock(g_serial_mutex);
  if (--g_serial_depth == 0) openblas_set_num_threads(g_saved_threads);
}

template <typename T>
void gemm_batched(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K, T alpha,
                  const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta,
                  T* C, int64_t ldc, int64_t stride_c) {
  auto item = [&](int64_t i, T b) {
    gemm<T>(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, b, C + i * stride_c, ldc);
  };
  // A shared C over an empty batch is an empty sum: beta * C, as gemm with K = 0.
  if (batch == 0) {
    if (stride_c == 0) scale_rows(M, N, beta, C, ldc);
    return;
  }
  // Small products are those BLAS would not split among its threads anyway; below a total of
  // 2^15 multiply-adds waking threads costs more than it saves. A shared C sums in batch order.
  int64_t work = M * N * K;
  bool many_small = stride_c != 0 && batch >= 2 * max_threads() && work <= (int64_t{1} << 21) &&
                    batch * work >= (int64_t{1} << 15);
  if (many_small) {
    SerialBlasScope serial;
    parallel_for(batch, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) item(i, beta);
    });
    return;
  }
  for (int64_t i = 0; i < batch; ++i) item(i, stride_c == 0 && i > 0 ? T(1) : beta);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);
template void gemm_batched<float>(bool, bool, int64_t, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                  int64_t, const float*, int64_t, int64_t, float, float*, int64_t, int64_t);
template void gemm_batched<double>(bool, bool, int64_t, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                   int64_t, const double*, int64_t, int64_t, double, double*, int64_t, int64_t);

}  // namespace mmfuse::cpu
