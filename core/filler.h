// Parameter initialisation from a FillerParameter (Caffe's fillers plus PyTorch's default).
//
//   constant          value
//   uniform           U(min, max)
//   gaussian          N(mean, std); with sparse = k >= 0, each element is kept with
//                     probability k / shape[0] and zeroed otherwise (Caffe)
//   positive_unitball U(0, 1), then each row (leading dim) scaled to sum to 1 (Caffe)
//   xavier            U(-sqrt(3/n), sqrt(3/n))   n by variance_norm: fan_in, fan_out or their mean
//   msra              N(0, sqrt(2/n))            (Caffe's MSRAFiller, He et al.)
//   bilinear          Caffe's upsampling kernel for Deconvolution ([*, *, K, K] weights)
//   pytorch           U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Conv/Linear
//                     weights (kaiming_uniform, a = sqrt(5)) and biases (pass the weight's fan_in)
//
// Every draw comes from the Generator, so a seed gives the same values on every device.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/prototxt.h"
#include "core/random.h"
#include "core/tensor.h"

namespace mmfuse {

// Throws OpError naming the filler for an unknown type or a shape it cannot fill.
void fill(Tensor& t, const proto::FillerParameter& filler, Generator& gen, int64_t fan_in, int64_t fan_out);

// Caffe's convention for a weight of shape [out, in, k...]: fan_in = numel / shape[0],
// fan_out = numel / shape[1].
int64_t fan_in_of(const Shape& weight_shape);
int64_t fan_out_of(const Shape& weight_shape);

// A filler of the given type (value for constant): for layers' built-in defaults.
proto::FillerParameter make_filler(const std::string& type, float value = 0);

std::vector<std::string> filler_types();

}  // namespace mmfuse
