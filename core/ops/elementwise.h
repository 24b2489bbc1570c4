// Elementwise ops: binary ops with numpy/PyTorch broadcasting, scalar ops, activations.
#pragma once
#include "base/elementwise_functors.h"
#include "core/tensor.h"

namespace mmfuse {

// Broadcasting (PyTorch semantics): shapes are aligned at the trailing dim; a dim of size 1
// stretches to the other operand's size.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);

// existing + incoming (the same shape), for the autograd engine's gradient sums: written into
// existing when nothing else holds it or its memory, on the CPU, with grad mode off (as in
// backward); the same bits as add. Otherwise it is add (a new tensor).
Tensor accumulate_gradient(Tensor existing, const Tensor& incoming);

// Scalar ops: x * scale + shift.
Tensor affine(const Tensor& x, double scale, double shift);
inline Tensor add_scalar(const Tensor& x, double s) { return affine(x, 1, s); }
inline Tensor mul_scalar(const Tensor& x, double s) { return affine(x, s, 0); }
inline Tensor neg(const Tensor& x) { return affine(x, -1, 0); }

// leaky ReLU with negative_slope (0: ReLU), as torch.nn.functional.leaky_relu.
Tensor relu(const Tensor& x, double negative_slope = 0);
// sigmoid, tanh, exp, log, abs (gradient 0 at 0, as PyTorch) and gelu (exact, x * Phi(x), as
// torch.nn.functional.gelu): one per entry of MMFUSE_UNARY_OPS (base/elementwise_functors.h).
#define MMF_DECLARE_UNARY(name, Functor) Tensor name(const Tensor& x);
MMFUSE_UNARY_OPS(MMF_DECLARE_UNARY)
#undef MMF_DECLARE_UNARY
Tensor pow(const Tensor& x, double exponent);
// Clamps into [min, max]; the gradient passes where min <= x <= max (torch.clamp).
Tensor clamp(const Tensor& x, double min, double max);

// The shape two operands broadcast to (throws naming `op` and both shapes).
Shape broadcast_shape(const char* op, const Shape& a, const Shape& b);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator+(const Tensor& x, double s) { return add_scalar(x, s); }
inline Tensor operator-(const Tensor& x, double s) { return add_scalar(x, -s); }
inline Tensor operator*(const Tensor& x, double s) { return mul_scalar(x, s); }
inline Tensor operator*(double s, const Tensor& x) { return mul_scalar(x, s); }
inline Tensor operator/(const Tensor& x, double s) { return mul_scalar(x, 1.0 / s); }

}  // namespace mmfuse
