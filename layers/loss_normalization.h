// Caffe's loss normalisation (LossParameter.normalization), shared by the loss layers that
// take it: the divisor of a summed loss, at least 1 (everything ignored gives 0, not NaN).
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/proto/mmfuse.pb.h"

namespace mmfuse {

// `fallback`: the layer's mode when neither `normalization` nor the legacy `normalize` is set
// (VALID for SoftmaxWithLoss, BATCH_SIZE for SigmoidCrossEntropyLoss, as Caffe); `normalize:
// true/false` means VALID / BATCH_SIZE. `valid`: positions not ignored (used only with an
// ignore_label), `full`: all positions, `batch`: N.
inline double loss_normalizer(const proto::LossParameter& p, proto::LossParameter::NormalizationMode fallback,
                              int64_t valid, int64_t full, int64_t batch) {
  auto mode = p.has_normalization() ? p.normalization() : fallback;
  if (!p.has_normalization() && p.has_normalize())
    mode = p.normalize() ? proto::LossParameter::VALID : proto::LossParameter::BATCH_SIZE;
  double n = 1;
  switch (mode) {
    case proto::LossParameter::FULL: n = static_cast<double>(full); break;
    case proto::LossParameter::BATCH_SIZE: n = static_cast<double>(batch); break;
    case proto::LossParameter::NONE: n = 1; break;
    case proto::LossParameter::VALID: n = static_cast<double>(p.has_ignore_label() ? valid : full); break;
  }
  return std::max(1.0, n);
}

}  // namespace mmfuse
