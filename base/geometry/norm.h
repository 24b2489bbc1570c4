// The geometry of modality-aware batch norm: x seen as [M*N, C, S].
// Shared by the CPU kernels (core/cpu/norm.h) and their CUDA twins, which take the same arguments:
// plain structs and index arithmetic, nothing of Tensor, OpenMP or CUDA. The namespace stays
// mmfuse::cpu, where the CPU kernels have always defined these names.
#pragma once
#include <cstdint>

namespace mmfuse::cpu {

struct BatchNormGeometry {
  int64_t modalities = 1;
  int64_t batch_per_modality = 0;  // N
  int64_t channels = 0;            // C
  int64_t spatial = 1;             // S
  int64_t groups() const { return modalities * channels; }
  int64_t count() const { return batch_per_modality * spatial; }  // elements per group
  // Offset of the run of S elements for (group g, sample n within its modality).
  int64_t run_offset(int64_t g, int64_t n) const {
    int64_t m = g / channels, c = g % channels;
    return ((m * batch_per_modality + n) * channels + c) * spatial;
  }
};

}  // namespace mmfuse::cpu
