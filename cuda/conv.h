// 2-D convolution on CUDA: the twins of core/cpu/conv.h (same ConvGeometry, raw pointers, plus
// the device). Each product goes to cuDNN v9 where the build has it (MMFUSE_WITH_CUDNN) and
// cuDNN accepts the geometry; otherwise to our own im2col / col2im kernels and cuBLAS. No CUDA
// headers here.
#pragma once
#include <cstddef>
#include <cstdint>

#include "base/geometry/conv.h"

namespace mmfuse::cuda {

using cpu::ConvGeometry;

// out = image (*) weight (no bias), overwrites out.
template <typename T>
void conv_forward(const ConvGeometry& g, const T* image, const T* weight, T* out, int device);
// grad_image = the adjoint of conv_forward in the image applied to grad_out (overwrites).
template <typename T>
void conv_backward_data(const ConvGeometry& g, const T* grad_out, const T* weight, T* grad_image, int device);
// grad_weight = the gradient of <grad_out, conv_forward(image, w)> in w, summed over the
// batch (overwrites). Deterministic on both paths unless conv_deterministic() is switched off.
template <typename T>
void conv_backward_weight(const ConvGeometry& g, const T* image, const T* grad_out, T* grad_weight, int device);
// out[n, c, :] += bias[c] for out [batch, channels, area].
template <typename T>
void add_channel_bias(T* out, const T* bias, int64_t batch, int64_t channels, int64_t area, int device);

// Process-wide switches, for tests and benchmarks: route every convolution through the
// im2col fallback even where cuDNN is there (default false), and the most workspace a cuDNN
// algorithm may take (default 1 GiB; algorithms needing more are passed over).
void set_conv_force_fallback(bool on);
bool conv_force_fallback();
void set_conv_workspace_limit(size_t bytes);
size_t conv_workspace_limit();
// How cuDNN's algorithm is chosen, once per geometry: off (default, PyTorch's default), the
// heuristics' first admissible candidate (cudnnGet*_v7): the same choice in every process, so
// runs and resumes are reproducible; on (PyTorch's cudnn.benchmark = True), every algorithm is
// timed on the first call's buffers (cudnnFind*AlgorithmEx) and the fastest admissible one
// kept, which can differ between processes. Measured on an H200 (docs/cuda.md): the trials win
// in strict fp32 (AsymFusion-101 step 653 -> 470 ms) and lose under TF32 (165 -> 175 ms).
// Deterministic (default on) admits only algorithms that give the same bits on every run (no
// atomics): off lets the search take the nondeterministic backward algorithms too, as PyTorch
// does unless its deterministic mode is on.
void set_conv_benchmark(bool on);
bool conv_benchmark();
void set_conv_deterministic(bool on);
bool conv_deterministic();
// How many (geometry, dtype, precision, direction) entries the cuDNN algorithm cache holds,
// and how many convolutions ran on the fallback because cuDNN was absent or refused.
size_t conv_algorithm_cache_size();
int64_t conv_fallback_count();

}  // namespace mmfuse::cuda
