// The geometry of softmax and cross entropy, [outer, dim, inner], the result of the target
// check, and the kinds of pointwise loss with their formulas.
// Shared by the CPU kernels (core/cpu/loss.h) and their CUDA twins, which take the same arguments:
// plain structs and index arithmetic, nothing of Tensor, OpenMP or CUDA. The namespace stays
// mmfuse::cpu, where the CPU kernels have always defined these names.
#pragma once
#include <cmath>
#include <cstdint>

#include "base/philox.h"  // MMF_HD

namespace mmfuse::cpu {

struct LineGeometry {
  int64_t outer = 1;
  int64_t dim = 1;
  int64_t inner = 1;
};

enum class PointwiseLoss { l1, mse };

// What cross_entropy needs to know of its targets before it runs, from either device's check:
// how many are not ignore_index, and the first one outside [0, classes) that is not
// ignore_index (-1: none).
struct TargetCheck {
  int64_t counted = 0;
  int64_t first_bad = -1;
};

// The pointwise losses' formulas, for the CPU loops and the CUDA kernels alike. f(diff): |diff|
// (l1) or diff^2 (mse).
template <typename T>
MMF_HD T pointwise_loss_value(PointwiseLoss kind, T diff) {
#ifdef __CUDA_ARCH__
  return kind == PointwiseLoss::l1 ? abs(diff) : diff * diff;  // CUDA's overloads
#else
  return kind == PointwiseLoss::l1 ? std::abs(diff) : diff * diff;
#endif
}

// d/dx of scale * g * f(x - t): scale * g * f'(diff) in double, f' = sign (sign(0) = 0, as
// torch.sign) for l1 and 2 * diff for mse. d/dt is its negation.
template <typename T>
MMF_HD T pointwise_loss_grad(PointwiseLoss kind, T diff, T g, double scale) {
  T slope = kind == PointwiseLoss::l1 ? T((diff > T(0)) - (diff < T(0))) : T(2) * diff;
  return static_cast<T>(scale * static_cast<double>(g) * static_cast<double>(slope));
}

}  // namespace mmfuse::cpu
