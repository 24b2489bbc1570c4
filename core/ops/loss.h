// Softmax and losses: softmax, log_softmax, fused cross entropy, L1 and MSE losses.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace mmfuse {

// torch.nn.functional's reduction argument: per-element losses, their mean or their sum.
enum class Reduction { none, mean, sum };

// torch.softmax / torch.log_softmax along `dim` (negative counts from the end), numerically
// stable (exponents of x - max).
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// torch.nn.functional.cross_entropy(logits, target, ignore_index=..., reduction=...) without
// class weights or label smoothing: log_softmax over dim 1 and the negative log-likelihood of
// the target class, in one fused op. logits [N, K, d1, ...] (or [N, K], or [K] with a 0-d
// target); target int32 [N, d1, ...] of class indices in [0, K). Positions whose target is
// ignore_index give loss 0 and do not count: `mean` divides by the number of other positions,
// and is NaN when every position is ignored (as PyTorch). A target outside [0, K) that is not
// ignore_index throws OpError naming the value and its position. Differentiable in logits.
// `counted`, when given, receives the number of positions that are not ignore_index (a CUDA
// target is checked and counted on the device).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     Reduction reduction = Reduction::mean, int64_t* counted = nullptr);

// torch.nn.functional.l1_loss / mse_loss: |input - target| and (input - target)^2, reduced.
// input and target must have the same shape (PyTorch would broadcast with a warning; here it
// is an error). Differentiable in both; the L1 gradient at input == target is 0 (torch.sign).
// `mean` of an empty tensor is NaN (as PyTorch).
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

}  // namespace mmfuse
