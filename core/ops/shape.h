// Shape ops: concatenation, splitting, slicing, padding and cropping. Each one copies into a
// new tensor (split along dim 0 excepted: its outputs are views, as narrow's are), and each
// backward pass is the adjoint op: concat <-> split, pad <-> crop, slice -> strided scatter.
// All dtypes are accepted; gradients flow for float32/float64.
#pragma once
#include <cstdint>
#include <vector>

#include "core/autograd.h"
#include "core/tensor.h"

namespace mmfuse {

// torch.cat: joins the tensors along `dim` (negative counts from the end). Shapes must agree
// except along dim; dtype and device must agree. Caffe's Concat layer.
Tensor concat(const TensorList& xs, int64_t dim);

// torch.split with a list of sizes: pieces of x along dim with the given sizes, which must
// sum to x.size(dim). One autograd node for all pieces. Along dim 0 the pieces are views of x.
TensorList split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
// `parts` pieces of equal size along dim (x.size(dim) must be divisible by parts), like
// Caffe's Slice layer without slice points.
TensorList split_equal(const Tensor& x, int64_t parts, int64_t dim);

// x[..., start:end:step, ...] along dim, with Python's rules: negative start/end count from
// the end and both are clamped into [0, size]; step must be positive (as in PyTorch).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);

// torch.nn.functional.pad, constant mode: pads holds (before, after) pairs starting from the
// LAST dim, at most one pair per dim; negative pads crop.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0);

// The window [offsets[d], offsets[d] + size[d]) of every dim d (Caffe's Crop with every
// offset given); offsets and size have one entry per dim of x.
Tensor crop(const Tensor& x, const std::vector<int64_t>& offsets, const Shape& size);

}  // namespace mmfuse
