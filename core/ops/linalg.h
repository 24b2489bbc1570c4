// Linear algebra ops: matrix products on OpenBLAS.
#pragma once
#include "core/tensor.h"

namespace mmfuse {

// Matrix product, as torch.matmul restricted to 2-D and 3-D operands: [M, K] x [K, N] -> [M, N];
// batched [B, M, K] x [B, K, N] -> [B, M, N]; a 2-D operand is broadcast over the batch of a
// 3-D one ([B, M, K] x [K, N] and [M, K] x [B, K, N] give [B, M, N]). Two 3-D operands must
// have the same batch (a batch of 1 is not broadcast, unlike torch.matmul).
Tensor matmul(const Tensor& a, const Tensor& b);

// Affine map as torch.nn.functional.linear: x [..., in], weight [out, in] (PyTorch layout),
// bias [out] or undefined; y = x W^T + b has shape [..., out].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace mmfuse
