// The elementwise family as functors: one templated loop (CPU) or kernel (CUDA) serves every
// unary op. forward(x) gives y; backward(x, y, g) gives dL/dx from the saved input x, the
// saved output y and the incoming gradient g. Dependency-free: included by .cu files too.
#pragma once
#include <cmath>

#include "base/philox.h"  // MMF_HD

namespace mmfuse::functors {

#ifndef __CUDACC__
using std::erf;
using std::exp;
using std::log;
using std::pow;
using std::tanh;
#endif

// PyTorch's leaky_relu: slope 0 is ReLU; the gradient at x == 0 is taken as the slope side.
struct Relu {
  double slope = 0;
  template <typename T> MMF_HD T forward(T x) const { return x > T(0) ? x : x * T(slope); }
  template <typename T> MMF_HD T backward(T x, T, T g) const { return x > T(0) ? g : g * T(slope); }
};
struct Sigmoid {
  template <typename T> MMF_HD T forward(T x) const { return T(1) / (T(1) + exp(-x)); }
  template <typename T> MMF_HD T backward(T, T y, T g) const { return g * y * (T(1) - y); }
};
struct Tanh {
  template <typename T> MMF_HD T forward(T x) const { return tanh(x); }
  template <typename T> MMF_HD T backward(T, T y, T g) const { return g * (T(1) - y * y); }
};
struct Exp {
  template <typename T> MMF_HD T forward(T x) const { return exp(x); }
  template <typename T> MMF_HD T backward(T, T y, T g) const { return g * y; }
};
struct Log {
  template <typename T> MMF_HD T forward(T x) const { return log(x); }
  template <typename T> MMF_HD T backward(T x, T, T g) const { return g / x; }
};
// d|x|/dx = sign(x), 0 at 0 (PyTorch).
struct Abs {
  template <typename T> MMF_HD T forward(T x) const { return x < T(0) ? -x : x; }
  template <typename T> MMF_HD T backward(T x, T, T g) const {
    return x > T(0) ? g : (x < T(0) ? -g : T(0));
  }
};
// torch.nn.functional.gelu (approximate='none'): x * Phi(x), Phi the standard normal CDF.
struct Gelu {
  template <typename T> MMF_HD T forward(T x) const { return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752))); }
  template <typename T> MMF_HD T backward(T x, T, T g) const {
    T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752)));
    T pdf = T(0.39894228040143268) * exp(T(-0.5) * x * x);  // the standard normal density
    return g * (cdf + x * pdf);
  }
};
struct Pow {
  double exponent = 1;
  template <typename T> MMF_HD T forward(T x) const { return pow(x, T(exponent)); }
  template <typename T> MMF_HD T backward(T x, T, T g) const {
    return exponent == 0 ? T(0) : g * T(exponent) * pow(x, T(exponent - 1));
  }
};
// Gradient passes where min <= x <= max (PyTorch's clamp).
struct Clamp {
  double lo = -INFINITY, hi = INFINITY;
  template <typename T> MMF_HD T forward(T x) const {
    return x < T(lo) ? T(lo) : (x > T(hi) ? T(hi) : x);
  }
  template <typename T> MMF_HD T backward(T x, T, T g) const {
    return (x >= T(lo) && x <= T(hi)) ? g : T(0);
  }
};
// y = x * scale + shift (the scalar ops: add, sub, mul, div, neg by a number).
struct Affine {
  double scale = 1, shift = 0;
  template <typename T> MMF_HD T forward(T x) const { return x * T(scale) + T(shift); }
  template <typename T> MMF_HD T backward(T, T, T g) const { return g * T(scale); }
};

// The unary ops without parameters, as (op name, functor). Each entry is an op
// `Tensor name(const Tensor& x)` (core/ops/elementwise.h), its CUDA instantiation
// (cuda/elementwise.cu) and its line in core/op_list.h, whose test then asks for a gradient
// test. Adding one: its functor above and an entry here, its gradient test and its CPU-CUDA
// parity case: three files (docs/design.md, "Adding an op").
#define MMFUSE_UNARY_OPS(X) X(sigmoid, Sigmoid) X(tanh, Tanh) X(exp, Exp) X(log, Log) X(abs, Abs) X(gelu, Gelu)

// Binary ops with broadcasting.
struct Add { template <typename T> MMF_HD T operator()(T a, T b) const { return a + b; } };
struct Sub { template <typename T> MMF_HD T operator()(T a, T b) const { return a - b; } };
struct Mul { template <typename T> MMF_HD T operator()(T a, T b) const { return a * b; } };
struct Div { template <typename T> MMF_HD T operator()(T a, T b) const { return a / b; } };

}  // namespace mmfuse::functors
