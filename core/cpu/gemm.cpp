#include "core/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/error.h"
#include "core/cpu/dnnl.h"
#include "core/cpu/parallel.h"

#ifdef MMFUSE_WITH_DNNL
#include <dnnl.h>
#endif

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

// A product of at least 2 * kBlockWork multiply-adds is cut into blocks of about kBlockWork
// or more; an edge that is cut is a multiple of kEdgeAlign (every x86 micro-kernel tile of
// OpenBLAS divides it, so only C's own edges meet edge kernels) and at least kMinEdge. Each
// block is a BLAS call that packs its own panels of A and B: with 2^22 and 256 the blocks of
// a conv2d forward (x [8,64,32,32], w [64,64,3,3]: 4 blocks of 64 x 256 x 576 per sample) cost
// 0-2% against one call per product on one thread of the 2-core dev machine, where 2^20 and 128
// cost 2-4%. Constants, never the thread count: a product's blocks, and so its bits, depend on
// its sizes only.
constexpr int64_t kBlockWork = int64_t{1} << 22;
constexpr int64_t kEdgeAlign = 64;
constexpr int64_t kMinEdge = 256;

namespace {

struct Blocks {
  int64_t rows, cols;            // edge of a block (the last one down or across may be shorter)
  int64_t row_count, col_count;  // blocks down and across C
};

Blocks blocks_of(int64_t M, int64_t N, int64_t K) {
  // In double: M * N * K may pass 2^63 for sizes BLAS accepts.
  double wanted = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) / kBlockWork;
  Blocks b{M, N, 1, 1};
  if (wanted < 2) return b;
  auto cut = [](int64_t size, double parts, int64_t& edge, int64_t& count) {
    auto per_part = static_cast<int64_t>(std::ceil(static_cast<double>(size) / parts));
    edge = std::min(size, std::max(kMinEdge, ceil_div(per_part, kEdgeAlign) * kEdgeAlign));
    count = ceil_div(size, edge);
  };
  // The longer side first; the other one too if that gave too few blocks.
  if (N >= M) {
    cut(N, wanted, b.cols, b.col_count);
    if (wanted / static_cast<double>(b.col_count) >= 2) cut(M, wanted / static_cast<double>(b.col_count), b.rows, b.row_count);
  } else {
    cut(M, wanted, b.rows, b.row_count);
    if (wanted / static_cast<double>(b.row_count) >= 2) cut(N, wanted / static_cast<double>(b.row_count), b.cols, b.col_count);
  }
  return b;
}

// Runs call() so that whatever follows OpenMP's thread count inside it runs on one thread: a
// call outside an active parallel region is made inside a region of one thread whose own count
// is 1 (omp_set_num_threads on the calling thread itself would change its count for later).
template <typename F>
void on_one_omp_thread(F&& call) {
#ifdef _OPENMP
  if (!omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel num_threads(1)
    {
      omp_set_num_threads(1);
      call();
    }
    return;
  }
#endif
  call();
}

// Runs a BLAS call on one thread, whichever OpenBLAS build is loaded. The pthreads build takes
// its thread count from OPENBLAS_NUM_THREADS or OMP_NUM_THREADS at start-up, and anyone may
// change it since: it is set back to 1 whenever it is not. The OpenMP build follows OpenMP's
// thread count wherever no parallel region is active (and its openblas_set_num_threads sets
// OpenMP's count for the whole calling thread, so it is never called here).
template <typename F>
void serial_blas(F&& call) {
  static const int build = openblas_get_parallel();  // 0 serial, 1 pthreads, 2 OpenMP
  if (build == 1 && openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  if (build == 2) return on_one_omp_thread(call);
  call();
}

template <typename T>
void blas_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
               const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
#ifdef MMFUSE_WITH_DNNL
  // float32 on oneDNN's sgemm where it is on (about twice OpenBLAS's speed on LeNet's inner
  // products, one thread, AVX-512), on one thread as below: oneDNN follows OpenMP's count, and
  // inside an active region runs on the calling thread. Should it refuse, OpenBLAS runs.
  if constexpr (std::is_same_v<T, float>) {
    if (dnnl_enabled()) {
      dnnl_status_t status = dnnl_success;
      on_one_omp_thread([&] {
        status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      });
      if (status == dnnl_success) return;
    }
  }
#endif
  auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  auto m = static_cast<blasint>(M), n = static_cast<blasint>(N), k = static_cast<blasint>(K);
  auto la = static_cast<blasint>(lda), lb = static_cast<blasint>(ldb), lc = static_cast<blasint>(ldc);
  serial_blas([&] {
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, A, la, B, lb, beta, C, lc);
    else
      cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, A, la, B, lb, beta, C, lc);
  });
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  // An empty sum: BLAS would reject lda = 0, and the answer is beta * C anyway.
  if (K == 0 || alpha == T(0)) return scale_rows(M, N, beta, C, ldc);
  // Checked once, here: no block is larger, and nothing may throw inside a parallel region.
  for (auto [v, what] : {std::pair{M, "M"}, {N, "N"}, {K, "K"}, {lda, "lda"}, {ldb, "ldb"}, {ldc, "ldc"}})
    blas_int(v, what);
  Blocks b = blocks_of(M, N, K);
  auto block = [&](int64_t i) {
    int64_t r0 = i / b.col_count * b.rows, c0 = i % b.col_count * b.cols;
    const T* a = A + (trans_a ? r0 : r0 * lda);   // rows r0.. of op(A)
    const T* bb = B + (trans_b ? c0 * ldb : c0);  // columns c0.. of op(B)
    blas_gemm<T>(trans_a, trans_b, std::min(b.rows, M - r0), std::min(b.cols, N - c0), K, alpha, a, lda, bb, ldb,
                 beta, C + r0 * ldc + c0, ldc);
  };
  // Threads take whole blocks; inside a parallel region the caller's thread runs them all.
  parallel_for(b.row_count * b.col_count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) block(i);
  });
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
  // Small products are those gemm does not cut into blocks; below a total of 2^15 multiply-adds
  // waking threads costs more than it saves. Which way runs changes who computes an item, not
  // how. A shared C sums in batch order.
  int64_t work = M * N * K;
  bool many_small = stride_c != 0 && batch >= 2 * max_threads() && work < 2 * kBlockWork &&
                    batch * work >= (int64_t{1} << 15);
  if (many_small) {
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
