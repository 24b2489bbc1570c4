// Row-major matrix products on CUDA through cuBLAS: the twins of core/cpu/gemm.h, same
// arguments plus the device (work runs on its compute stream). No CUDA headers here. The
// precision of float products is an argument, by default cuda::matmul_precision() read at the
// call (matmul, linear); the convolution fallback passes conv_precision(). It becomes the
// cuBLAS handle's math mode (fp32, or TF32 tensor cores) for this call only, set under the
// device context's cuBLAS lock. Double is always exact fp64.
#pragma once
#include <cstdint>

#include "cuda/precision.h"

namespace mmfuse::cuda {

// C = alpha * op(A) * op(B) + beta * C, row-major, as cpu::gemm (beta == 0 ignores C's old
// contents, NaN included; sizes may be 0: K == 0 leaves beta * C).
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc, int device,
          Precision precision = matmul_precision());

// As cpu::gemm_batched: stride 0 for A or B reuses one matrix; stride_c == 0 sums the
// products into one C in batch order (beta applying once; an empty batch leaves beta * C).
template <typename T>
void gemm_batched(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K, T alpha,
                  const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta,
                  T* C, int64_t ldc, int64_t stride_c, int device, Precision precision = matmul_precision());

// out [rows, cols] = row repeated (the bias a gemm with beta = 1 adds onto).
template <typename T>
void repeat_row(const T* row, int64_t rows, int64_t cols, T* out, int device);

}  // namespace mmfuse::cuda
