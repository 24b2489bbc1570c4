// CPU↔CUDA parity of max_pool2d, avg_pool2d and global_avg_pool: the pool op-case table
// (tests/op_cases/pool.cpp: overlapping windows, padding, ceil mode, ties; tolerances there
// and in docs/cuda.md).
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

TEST_CASE("parity: the pool table") { testing::check_parity_cases(testing::pool_cases()); }
