// The optimizers' per-element update rules (PyTorch's SGD, Adam and AdamW; docs/design.md,
// "Optimizers"), written once for the CPU loop (core/optimizer.cpp) and the CUDA kernels
// (cuda/optimizer.cu). The arithmetic is in double whatever the parameter's type; a state
// buffer is stored in the parameter's type and read back from there, the same on both devices.
// Dependency-free: included by .cu files too.
#pragma once
#include <cmath>
#include <cstdint>

#include "base/philox.h"  // MMF_HD

namespace mmfuse::rules {

#ifndef __CUDACC__
using std::sqrt;
#endif

// d = g * scale + wd * w; with momentum v = momentum * v + d and d = nesterov ? d + momentum * v
// : v; w -= lr * d. `scale` is the gradient-clipping factor. v is not read (may be null)
// without momentum.
struct Sgd {
  double lr, weight_decay, momentum;
  bool nesterov;
  template <typename T>
  MMF_HD void update(T* w, const T* g, T* v, int64_t i, double scale) const {
    double d = static_cast<double>(g[i]) * scale + weight_decay * static_cast<double>(w[i]);
    if (momentum != 0) {
      v[i] = static_cast<T>(momentum * static_cast<double>(v[i]) + d);
      d = nesterov ? d + momentum * static_cast<double>(v[i]) : static_cast<double>(v[i]);
    }
    w[i] = static_cast<T>(static_cast<double>(w[i]) - lr * d);
  }
};

// Adam / AdamW: d = g * scale (+ wd * w for Adam; AdamW decays w by lr * wd first);
// m = b1 m + (1 - b1) d; v = b2 v + (1 - b2) d^2; w -= lr * (m / bias1) / (sqrt(v / bias2) + eps),
// bias_k = 1 - b_k^step.
struct Adam {
  double lr, weight_decay, beta1, beta2, eps, bias1, bias2;
  bool decoupled;  // AdamW
  template <typename T>
  MMF_HD void update(T* w, const T* g, T* m, T* v, int64_t i, double scale) const {
    double d = static_cast<double>(g[i]) * scale;
    double wi = static_cast<double>(w[i]);
    if (decoupled) wi -= lr * weight_decay * wi;
    else d += weight_decay * wi;
    m[i] = static_cast<T>(beta1 * static_cast<double>(m[i]) + (1 - beta1) * d);
    v[i] = static_cast<T>(beta2 * static_cast<double>(v[i]) + (1 - beta2) * d * d);
    double denom = sqrt(static_cast<double>(v[i]) / bias2) + eps;
    w[i] = static_cast<T>(wi - lr * (static_cast<double>(m[i]) / bias1) / denom);
  }
};

}  // namespace mmfuse::rules
