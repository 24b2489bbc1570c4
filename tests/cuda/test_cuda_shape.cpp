// CPU↔CUDA parity of the shape family (concat, split, slice, pad, crop; forward and backward,
// which is the adjoint op) on odd shapes, along every dim, with steps, negative pads and
// views at unaligned offsets (the scalar path of the block copy) as well as 16-byte aligned
// rows (the vector path). A copy moves bits: every tolerance is 0, and integer dtypes move
// unchanged.
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

constexpr double kExact = 0;

Tensor uniform(const Shape& s, Generator& gen) { return Tensor::rand(s, gen, -1, 1, DType::f32); }

}  // namespace

MMF_CUDA_TEST("parity: concat along every dim") {
  Generator gen(71);
  // [3, 8, 4] rows of 32 floats (vector path when concatenating along 0 or 1), odd sizes
  // elsewhere (scalar path).
  std::vector<Shape> shapes = {{3, 5, 7}, {3, 8, 4}, {1, 1, 1}, {2, 3, 37, 9}};
  for (const Shape& s : shapes) {
    for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
      INFO("concat of " << shape_str(s) << " variants along dim " << d);
      Shape a = s, b = s, c = s;
      b[d] += 2;
      c[d] = 1;
      CHECK_PARITY([d](const TensorList& t) { return concat(t, d); }, {uniform(a, gen), uniform(b, gen), uniform(c, gen)},
                   kExact);
    }
  }
  INFO("concat along dim -1 with an empty piece");
  CHECK_PARITY([](const TensorList& t) { return concat(t, -1); }, {uniform({3, 5}, gen), uniform({3, 0}, gen)}, kExact);
}

MMF_CUDA_TEST("parity: split along every dim, each piece") {
  Generator gen(72);
  Shape s = {7, 9, 11};
  for (int64_t d = 0; d < 3; ++d) {
    std::vector<int64_t> sizes = {2, s[d] - 5, 3};
    for (size_t piece = 0; piece < sizes.size(); ++piece) {
      INFO("split " << shape_str(s) << " along " << d << " piece " << piece);
      CHECK_PARITY([d, sizes, piece](const TensorList& t) { return split(t[0], sizes, d)[piece]; },
                   {uniform(s, gen)}, kExact);
    }
  }
  INFO("split_equal of [6, 8, 4] along dim 1 (vector path)");
  CHECK_PARITY([](const TensorList& t) { return split_equal(t[0], 2, 1)[1]; }, {uniform({6, 8, 4}, gen)}, kExact);
}

MMF_CUDA_TEST("parity: slice with steps, negative bounds and unaligned views") {
  Generator gen(73);
  struct Case { int64_t dim, start, end, step; };
  std::vector<Case> cases = {{0, 1, 6, 2}, {1, -7, -1, 3}, {2, 0, 11, 1}, {2, 3, 100, 4}, {1, 5, 2, 1}, {-1, 1, 9, 1}};
  for (const Case& c : cases) {
    INFO("slice [5, 9, 11] dim " << c.dim << " [" << c.start << ", " << c.end << ") step " << c.step);
    CHECK_PARITY([c](const TensorList& t) { return slice(t[0], c.dim, c.start, c.end, c.step); },
                 {uniform({5, 9, 11}, gen)}, kExact);
  }
  INFO("slice of a view at an odd offset");
  CHECK_PARITY([](const TensorList& t) { return slice(t[0].narrow(1, 5), 1, 2, 31); }, {uniform({7, 37}, gen)},
               kExact);
}

MMF_CUDA_TEST("parity: pad (positive, negative, value) and crop") {
  Generator gen(74);
  std::vector<std::vector<int64_t>> pads = {{1, 2}, {0, 3, 2, 0}, {-1, 2, 1, -2}, {2, 2, 1, 1, 1, 0}, {-3, -4}};
  for (const auto& p : pads) {
    INFO("pad [3, 7, 9] by " << shape_str(p));
    CHECK_PARITY([p](const TensorList& t) { return pad(t[0], p, 0.5); }, {uniform({3, 7, 9}, gen)}, kExact);
  }
  INFO("crop");
  CHECK_PARITY([](const TensorList& t) { return crop(t[0], {1, 0, 2, 3}, {2, 3, 5, 4}); },
               {uniform({3, 3, 9, 11}, gen)}, kExact);
  CHECK_PARITY([](const TensorList& t) { return crop(t[0], {0, 4}, {5, 8}); }, {uniform({5, 16}, gen)}, kExact);
}

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

MMF_CUDA_TEST("concat on CUDA of a large tensor (64-bit-safe planning, vector path)") {
  Generator gen(76);
  Tensor a = uniform({3, 1 << 20}, gen), b = uniform({3, 12345}, gen);
  CHECK_PARITY([](const TensorList& t) { return concat(t, 1); }, {a, b}, kExact);
}
