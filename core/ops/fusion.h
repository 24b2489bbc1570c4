// Fusion ops on modality-stacked tensors (DESIGN.md, "Reference semantics"): a shared network
// over M modalities carries one tensor [M*N, C, ...] whose modality m is the batch slice
// [m*N, (m+1)*N). None of these ops has parameters of its own (the ensemble's alpha is an
// input owned by its layer). PyTorch has no counterpart for most of them; each comment names
// the published code it matches (AsymFusion: yikaiw/AsymFusion models/model.py ShiftShuffle;
// MMTM: haamoon/mmtm mmtm.py, with the paper's gate scale).
#pragma once
#include <cstdint>
#include <vector>

#include "core/autograd.h"
#include "core/tensor.h"

namespace mmfuse {

// Channels kept by channel_shuffle for `channels` channels and `keep_ratio` in [0, 1]. The
// ratio must be a fraction p/q (q <= 100, found within 1e-9, lowest terms); the channels are
// cut into q groups of floor(C/q) and the first p groups are kept: k = p * floor(C/q). With
// 0.8 = 4/5 this is AsymFusion's k = 4*floor(C/5) exactly (64 -> 48, 128 -> 100, 256 -> 204,
// 512 -> 408); 0.5 keeps floor(C/2), 0.75 keeps 3*floor(C/4), 1 keeps everything, 0 nothing.
// As in AsymFusion, C < q keeps nothing (with 0.8, C < 5 exchanges every channel).
int64_t channel_shuffle_kept(int64_t channels, double keep_ratio);

// AsymFusion's channel shuffle, cyclic for M > 2: x [M*N, C, ...] (rank >= 2). Modality m
// keeps channels [0, k) and takes channels [k, C) from modality (m+1) mod M, with k from
// channel_shuffle_kept. `receivers` lists the modalities that take (empty: all); the others
// pass through unchanged. The gradient is the adjoint (channels [k, C) go back to the giver).
Tensor channel_shuffle(const Tensor& x, int64_t modalities, double keep_ratio = 0.8,
                       const std::vector<int64_t>& receivers = {});
// channel_shuffle's checks on shapes alone (what a layer's setup has): throws the op's OpError
// for what the op refuses, returns the result's shape.
Shape channel_shuffle_shape(const Shape& x, int64_t modalities, double keep_ratio = 0.8,
                            const std::vector<int64_t>& receivers = {});

// AsymFusion's pixel-shift fusion, fused with its addition: y, a [M*N, C, H, W] (same shape);
// modality m of the result is y_m + PS(a_{(m+1) mod M}) for receivers (empty: all), y_m for
// the others. PS: with g = floor(C / (groups+1)), channel group q = channels [q*g, (q+1)*g)
// moves its content by `shift` pixels in direction q mod 4 (0 down, 1 right, 2 left, 3 up),
// zero fill at the edges; for groups > 4 the directions cycle and the shift doubles each
// cycle (group q moves shift * 2^(q/4) pixels); channels >= groups*g contribute zero.
// groups = 4, shift = 1 is AsymFusion (g = floor(C/5)). One pass: y and a read once, the
// result written once. Gradients: dy = dtop, da_{m+1} = PS^T(dtop_m) for receivers m.
Tensor pixel_shift_add(const Tensor& y, const Tensor& a, int64_t modalities, int64_t groups = 4,
                       int64_t shift = 1, const std::vector<int64_t>& receivers = {});
// pixel_shift_add's checks on shapes alone, as channel_shuffle_shape.
Shape pixel_shift_add_shape(const Shape& y, const Shape& a, int64_t modalities, int64_t groups = 4, int64_t shift = 1,
                            const std::vector<int64_t>& receivers = {});

// MMTM's gating (paper form, gate_scale = 2; the official code's is 1): x [N, C, ...] of any
// rank >= 2 (a plain [N, C] vector too), e [N, C];
// top[n, c, ...] = gate_scale * sigmoid(e[n, c]) * x[n, c, ...]. gate_scale must be > 0.
Tensor channel_gate(const Tensor& x, const Tensor& e, double gate_scale = 2);

// AsymFusion/CEN's learned ensemble: logits [M*N, K, ...], alpha [M];
// top [N, K, ...] = sum_m softmax(alpha)_m * logits_m. With `detach` the logits are treated
// as constants (torch's logits.detach(): only alpha gets a gradient); without, both do.
Tensor modality_ensemble(const Tensor& logits, const Tensor& alpha, int64_t modalities, bool detach = true);

// M tensors of one shape [N, ...] (any dtype) -> [M*N, ...] (torch.cat on dim 0 with equal
// shapes). The gradient of input m is slice m of the output's gradient.
Tensor modality_stack(const TensorList& xs);
// [M*N, ...] -> M views [N, ...] that share x's storage (Tensor::narrow, autograd-aware).
TensorList modality_split(const Tensor& x, int64_t modalities);
// One label (or any) tensor [N, ...] of any dtype, repeated M times along dim 0 -> [M*N, ...],
// to pair with stacked logits (torch's label.repeat(M, 1, ...)).
Tensor modality_tile(const Tensor& label, int64_t modalities);

}  // namespace mmfuse
