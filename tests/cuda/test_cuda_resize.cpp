// CPU↔CUDA parity of upsample_bilinear and upsample_nearest: the resize op-case table
// (tests/op_cases/resize.cpp; tolerances there and in docs/cuda.md).
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

TEST_CASE("parity: the resize table") { testing::check_parity_cases(testing::resize_cases()); }
