// CPU↔CUDA parity of the shape family: its op-case table (tests/op_cases/shape.cpp: every
// dim, steps, negative pads, unaligned views and aligned rows, a large concat; tolerance 0); and
// every dtype moved unchanged on the device.
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

TEST_CASE("parity: the shape table") { testing::check_parity_cases(testing::shape_cases()); }

MMF_CUDA_TEST("shape ops on CUDA move every dtype unchanged") {
  Generator gen(75);
  Device gpu = Device::cuda(0);
  for (DType dt : {DType::f64, DType::i32, DType::i64, DType::u8}) {
    INFO("dtype " << dtype_name(dt));
    // Values 0..99 survive every conversion exactly.
    Tensor a = Tensor::rand({4, 6, 16}, gen, 0, 100, DType::f32).to(DType::i32).to(dt);
    Tensor b = Tensor::rand({4, 5, 16}, gen, 0, 100, DType::f32).to(DType::i32).to(dt);
    Tensor ag = a.to(gpu), bg = b.to(gpu);
    CHECK(testing::relative_error(concat({ag, bg}, 1), concat({a, b}, 1)) == 0);
    CHECK(testing::relative_error(slice(ag, 2, 1, 15, 3), slice(a, 2, 1, 15, 3)) == 0);
    CHECK(testing::relative_error(pad(bg, {16, 0, 1, 1}, 7), pad(b, {16, 0, 1, 1}, 7)) == 0);
    CHECK(testing::relative_error(crop(ag, {1, 2, 0}, {3, 4, 16}), crop(a, {1, 2, 0}, {3, 4, 16})) == 0);
    CHECK(testing::relative_error(split(ag, {7, 9}, 2)[1], split(a, {7, 9}, 2)[1]) == 0);
  }
}
