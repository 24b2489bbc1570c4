// Row-major matrix products on the CPU through OpenBLAS (CBLAS). The one place that talks to
// BLAS: matmul, linear, conv and later layers call gemm / gemm_batched with raw pointers, so a
// CUDA twin (cuBLAS) can take the same arguments.
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/cpu/parallel.h"

namespace mmfuse::cpu {

// C = alpha * op(A) * op(B) + beta * C, all row-major; op(A) is M x K, op(B) is K x N, C is
// M x N. lda/ldb/ldc are the row strides (in elements) of A, B, C as stored. beta == 0 ignores
// C's old contents (NaN included), as BLAS does. Sizes may be 0.
//
// Same bits for any thread count: C is cut into blocks whose edges depend on (M, N, K) only,
// each block is one call of single-threaded BLAS over the whole K, and threads take whole
// blocks. BLAS's own threads are never used — OpenBLAS splits a product among them by their
// number, and its kernels (the AVX-512 ones above all) round differently at the edges of a
// split and for smaller products (docs/reliability.md, "Determinism across thread counts and
// CPUs"). Called from inside a parallel region, the blocks run on the calling thread.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// gemm over `batch` triples of matrices stepping stride_a/stride_b/stride_c elements apart. A
// stride of 0 reuses one matrix for every item (broadcast); stride_c == 0 sums the products of
// the whole batch into one C, in batch order, beta applying once. Each item is one gemm (the
// same blocks whoever runs it): many small products run in parallel, one thread each; few large
// ones one after another, their blocks in parallel.
template <typename T>
void gemm_batched(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K, T alpha,
                  const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta,
                  T* C, int64_t ldc, int64_t stride_c);

// Copies `row` (cols elements) into every row of out [rows, cols]: the bias term a gemm with
// beta = 1 then adds onto.
template <typename T>
void repeat_row(const T* row, int64_t rows, int64_t cols, T* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) out[r * cols + j] = row[j];
}

}  // namespace mmfuse::cpu
