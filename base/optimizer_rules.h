// The optimizers' per-element update rules (PyTorch's SGD, Adam and AdamW, Caffe's AdaGrad,
// RMSProp and AdaDelta; docs/design.md, "Optimizers", docs/training.md), written once for the CPU loop (core/optimizer.cpp) and the CUDA kernels
// (cuda/optimizer.cu). The arithmetic is in double whatever the parameter's type; a state
// buffer is stored in the parameter's type and read back from there, the same on both devices.
// Dependency-free: included by .cu files too.
#pragma once
#include <cmath>
#include <cstdint>

#include "base/philox.h"  // MMF_HD_INLINE

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
  MMF_HD_INLINE void update(T* w, const T* g, T* v, int64_t i, double scale) const {
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
  MMF_HD_INLINE void update(T* w, const T* g, T* m, T* v, int64_t i, double scale) const {
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

// Caffe's adaptive solvers (AdaGradSolver, RMSPropSolver, AdaDeltaSolver), whose formulas are
// also PyTorch's Adagrad (lr_decay 0), RMSprop (no momentum, not centred) and Adadelta. With
// d = g * scale + wd * w (L2 decay folded into the gradient, as Caffe's Regularize):
//   AdaGrad:  h += d^2;                          w -= lr * d / (sqrt(h) + eps)
//   RMSProp:  h = decay h + (1 - decay) d^2;     w -= lr * d / (sqrt(h) + eps)   (decay: rms_decay)
//   AdaDelta: h = decay h + (1 - decay) d^2;     s = d * sqrt((u + eps) / (h + eps));
//             u = decay u + (1 - decay) s^2;     w -= lr * s                     (decay: momentum)
// eps is the solver's delta. u is read by AdaDelta only (may be null otherwise).
struct Adaptive {
  enum Kind : int { adagrad, rmsprop, adadelta };
  Kind kind;
  double lr, weight_decay, decay, eps;
  template <typename T>
  MMF_HD_INLINE void update(T* w, const T* g, T* h, T* u, int64_t i, double scale) const {
    double d = static_cast<double>(g[i]) * scale + weight_decay * static_cast<double>(w[i]);
    double hi = kind == adagrad ? static_cast<double>(h[i]) + d * d
                                : decay * static_cast<double>(h[i]) + (1 - decay) * d * d;
    h[i] = static_cast<T>(hi);
    hi = static_cast<double>(h[i]);  // as stored, the same on both devices
    double step;
    if (kind == adadelta) {
      step = d * sqrt((static_cast<double>(u[i]) + eps) / (hi + eps));
      u[i] = static_cast<T>(decay * static_cast<double>(u[i]) + (1 - decay) * step * step);
    } else {
      step = d / (sqrt(hi) + eps);
    }
    w[i] = static_cast<T>(static_cast<double>(w[i]) - lr * step);
  }
};

}  // namespace mmfuse::rules
