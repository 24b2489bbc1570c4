// Reductions over chosen dims. An empty dims list reduces over every dim.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace mmfuse {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Maximum values; the gradient goes to the first maximal element (torch.amax routes it evenly
// among ties; with distinct values the two agree).
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);

// Sums x down to `shape` (the inverse of broadcasting): leading dims are summed away and dims
// where shape has 1 are summed with keepdim. Used by the backward of broadcasting ops.
Tensor sum_to(const Tensor& x, const Shape& shape);

// Repeats x along the reduced dims back to `shape` (the backward of sum); x must have the
// keepdim shape of the reduction.
Tensor expand_to(const Tensor& x, const Shape& shape);

}  // namespace mmfuse
