// The optimizer's device half (core/optimizer.cpp): the global gradient norm as a
// deterministic reduction, and fused SGD / Adam updates that read the clip scale from device
// memory, so a step enqueues everything and synchronises once (to report the norm). No CUDA
// headers here.
#pragma once
#include <cstdint>

#include "base/optimizer_rules.h"

namespace mmfuse::cuda {

// How many partial sums grad_sumsq writes for n elements: depends on n only, so the order of
// the additions, and the norm's rounding, never depend on the GPU or on timing.
int64_t sumsq_partials(int64_t n);
// partials[k] = sum of g[i]^2 (in double) over the k-th of sumsq_partials(n) fixed chunks.
template <typename T>
void grad_sumsq(const T* g, int64_t n, double* partials, int device);
// norm_scale[0] = sqrt(host_sumsq + sum of the `count` partials) (a fixed tree over one block),
// norm_scale[1] = clip / norm where clip > 0 and norm > clip, else 1: the factor every update
// kernel applies to the gradients. host_sumsq carries the squares of parameters on the CPU.
void finish_grad_norm(const double* partials, int64_t count, double host_sumsq, double clip, double* norm_scale,
                      int device);

// The update rules of Optimizer::step (base/optimizer_rules.h, the CPU's too), one fused kernel
// per parameter; grad_scale points at norm_scale[1] (device). v is not read (may be null) for
// SGD without momentum.
template <typename T>
void sgd_update(T* w, const T* g, T* v, int64_t n, const rules::Sgd& rule, const double* grad_scale, int device);
template <typename T>
void adam_update(T* w, const T* g, T* m, T* v, int64_t n, const rules::Adam& rule, const double* grad_scale,
                 int device);

// AdaGrad, RMSProp, AdaDelta (rules::Adaptive); u is read by AdaDelta only (may be null).
template <typename T>
void adaptive_update(T* w, const T* g, T* h, T* u, int64_t n, const rules::Adaptive& rule, const double* grad_scale,
                     int device);

}  // namespace mmfuse::cuda
