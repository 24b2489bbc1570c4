// The geometry of softmax and cross entropy, [outer, dim, inner], and the kinds of pointwise
// loss.
// Shared by the CPU kernels (core/cpu/loss.h) and their CUDA twins, which take the same arguments:
// plain structs and index arithmetic, nothing of Tensor, OpenMP or CUDA. The namespace stays
// mmfuse::cpu, where the CPU kernels have always defined these names.
#pragma once
#include <cstdint>

namespace mmfuse::cpu {

struct LineGeometry {
  int64_t outer = 1;
  int64_t dim = 1;
  int64_t inner = 1;
};

enum class PointwiseLoss { l1, mse };

}  // namespace mmfuse::cpu
