// CPU↔CUDA parity of the pooling and resize families, forward and backward, on odd and
// non-multiple-of-32 shapes (overlapping windows, padding, ceil mode, ties). Tolerances
// (docs/cuda.md): max pooling agrees to the bit (same element chosen, gathers add the same
// terms); average pooling forward to the bit, backward to the order of its gather (1e-6);
// global average pooling accumulates in double on both sides (1e-6); resizing uses the CPU's
// taps and weights, FMA contraction and gather order aside (1e-6).
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

constexpr double kExact = 0;
constexpr double kOrder = 1e-6;

Pool2dOptions pool(int64_t k, int64_t s, int64_t p, bool ceil = false, bool include_pad = true) {
  Pool2dOptions o;
  o.kernel_h = o.kernel_w = k;
  o.stride_h = o.stride_w = s;
  o.pad_h = o.pad_w = p;
  o.ceil_mode = ceil;
  o.count_include_pad = include_pad;
  return o;
}

std::vector<std::pair<Shape, Pool2dOptions>> pool_cases() {
  Pool2dOptions rect = pool(3, 2, 1);
  rect.kernel_w = 5, rect.stride_w = 3, rect.pad_w = 2;
  return {{{2, 3, 7, 9}, pool(2, 2, 0)},        {{2, 3, 7, 9}, pool(3, 2, 1)},
          {{1, 5, 13, 11}, pool(3, 1, 1)},      {{3, 2, 9, 9}, pool(3, 2, 0, true)},
          {{2, 3, 11, 13}, pool(3, 2, 1, true, false)}, {{1, 33, 17, 35}, rect},
          {{1, 1, 1, 1}, pool(1, 1, 0)}};
}

}  // namespace

MMF_CUDA_TEST("parity: max_pool2d and avg_pool2d") {
  Generator gen(51);
  for (auto& [shape, o] : pool_cases()) {
    INFO("pool " << shape_str(shape) << " kernel " << o.kernel_h << "x" << o.kernel_w << " stride " << o.stride_h
                 << " pad " << o.pad_h << " ceil " << o.ceil_mode << " include_pad " << o.count_include_pad);
    TensorList in = {Tensor::rand(shape, gen, -1, 1, DType::f32)};
    Pool2dOptions opt = o;
    CHECK_PARITY([opt](const TensorList& t) { return max_pool2d(t[0], opt); }, in, kExact, kExact);
    CHECK_PARITY([opt](const TensorList& t) { return avg_pool2d(t[0], opt); }, in, kExact, kOrder);
  }
}

MMF_CUDA_TEST("parity: max_pool2d with ties picks the same element") {
  Generator gen(52);
  // Values in {0, 1, 2}: most windows hold ties.
  Tensor x = Tensor::rand({2, 3, 9, 11}, gen, 0, 3, DType::f32);
  std::vector<float> v = x.to_vector<float>();
  for (float& e : v) e = static_cast<float>(static_cast<int>(e));
  x = Tensor::from_vector(v, x.shape());
  CHECK_PARITY([](const TensorList& t) { return max_pool2d(t[0], pool(3, 1, 1)); }, {x}, kExact, kExact);
}

MMF_CUDA_TEST("parity: global_avg_pool") {
  Generator gen(53);
  for (const Shape& s : std::vector<Shape>{{2, 3, 7, 9}, {3, 5, 1, 1}, {2, 65, 33, 17}, {4, 7, 1000}}) {
    INFO("global_avg_pool " << shape_str(s));
    TensorList in = {Tensor::rand(s, gen, -1, 1, DType::f32)};
    CHECK_PARITY([](const TensorList& t) { return global_avg_pool(t[0]); }, in, kOrder, kOrder);
    CHECK_PARITY([](const TensorList& t) { return global_avg_pool(t[0], true); }, in, kOrder, kOrder);
  }
}

MMF_CUDA_TEST("parity: upsample_bilinear (both align_corners) and upsample_nearest") {
  Generator gen(54);
  struct Case { Shape x; int64_t h, w; };
  std::vector<Case> cases = {{{2, 3, 5, 7}, 10, 14}, {{2, 3, 5, 7}, 13, 9}, {{1, 2, 9, 9}, 4, 5},
                             {{1, 33, 7, 3}, 7, 35}, {{2, 1, 1, 1}, 3, 5},  {{1, 3, 6, 6}, 6, 6}};
  for (const Case& c : cases) {
    INFO("resize " << shape_str(c.x) << " -> " << c.h << "x" << c.w);
    TensorList in = {Tensor::rand(c.x, gen, -1, 1, DType::f32)};
    int64_t h = c.h, w = c.w;
    CHECK_PARITY([h, w](const TensorList& t) { return upsample_bilinear(t[0], h, w, false); }, in, kOrder, kOrder);
    CHECK_PARITY([h, w](const TensorList& t) { return upsample_bilinear(t[0], h, w, true); }, in, kOrder, kOrder);
    CHECK_PARITY([h, w](const TensorList& t) { return upsample_nearest(t[0], h, w); }, in, kExact, kOrder);
  }
  TensorList in = {Tensor::rand({2, 3, 5, 7}, gen, -1, 1, DType::f32)};
  CHECK_PARITY([](const TensorList& t) { return upsample_bilinear_scale(t[0], 2.5, false); }, in, kOrder, kOrder);
  CHECK_PARITY([](const TensorList& t) { return upsample_bilinear_scale(t[0], 1.7, true); }, in, kOrder, kOrder);
}
