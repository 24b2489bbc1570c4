// upsample_bilinear (both align_corners, by size and by scale: up, down, mixed, one pixel) and
// upsample_nearest. Parity tolerances (docs/cuda.md): resizing uses the CPU's taps and weights,
// FMA contraction and gather order aside (1e-6); nearest forward moves bits.
#include "tests/op_cases/op_case.h"

namespace mmfuse::testing {

namespace {

constexpr double kExact = 0;
constexpr double kOrder = 1e-6;

}  // namespace

OpTable resize_cases() {
  OpTable t{"resize", {}};
  struct Case {
    Shape x;
    int64_t h, w;
    unsigned bilinear, nearest;  // the runs of each op's case
  };
  // Up on one axis and down on the other, up on both, a single output pixel, the identity.
  const unsigned both = kGrad | kParity;
  const std::vector<Case> cases = {{{2, 3, 5, 7}, 9, 4, both, both},       {{1, 3, 3, 5}, 7, 11, both, kParity},
                                   {{1, 2, 3, 5}, 1, 1, both, kParity},    {{1, 3, 5, 7}, 10, 14, kParity, both},
                                   {{1, 3, 7, 5}, 3, 5, kParity, both},    {{2, 3, 5, 7}, 10, 14, kParity, kParity},
                                   {{2, 3, 5, 7}, 13, 9, kParity, kParity}, {{1, 2, 9, 9}, 4, 5, kParity, kParity},
                                   {{1, 33, 7, 3}, 7, 35, kParity, kParity}, {{2, 1, 1, 1}, 3, 5, kParity, kParity},
                                   {{1, 3, 6, 6}, 6, 6, kParity, kParity}};
  for (const Case& c : cases) {
    std::string what = shape_str(c.x) + " -> " + std::to_string(c.h) + "x" + std::to_string(c.w);
    int64_t h = c.h, w = c.w;
    for (bool align : {false, true})
      t.add("upsample_bilinear", what + (align ? " align_corners" : ""), {in(c.x)},
            [h, w, align](const TensorList& x) { return upsample_bilinear(x[0], h, w, align); })
          .parity(kOrder, kOrder)
          .runs = c.bilinear;
    t.add("upsample_nearest", what, {in(c.x)}, [h, w](const TensorList& x) { return upsample_nearest(x[0], h, w); })
        .parity(kExact, kOrder)
        .runs = c.nearest;
  }
  for (double scale : {1.5, 0.6, 2.0, 2.5, 1.7})
    for (bool align : {false, true})
      t.add("upsample_bilinear", "[1, 3, 5, 7] scale " + std::to_string(scale) + (align ? " align_corners" : ""),
            {in({1, 3, 5, 7})},
            [scale, align](const TensorList& x) { return upsample_bilinear_scale(x[0], scale, align); })
          .parity(kOrder, kOrder)
          .runs = scale == 2.5 || scale == 1.7 ? kParity : both;
  // Bench rows: a segmentation decoder's x2 upsampling of [8, 64, 128, 128].
  t.add("upsample_bilinear", "[1, 3, 5, 7] x2", {in({1, 3, 5, 7})},
        [](const TensorList& x) { return upsample_bilinear(x[0], x[0].size(2) * 2, x[0].size(3) * 2, false); })
      .parity(kOrder, kOrder)
      .parity_only()
      .bench({{8, 64, 128, 128}});
  t.add("upsample_nearest", "[1, 3, 5, 7] x2", {in({1, 3, 5, 7})},
        [](const TensorList& x) { return upsample_nearest(x[0], x[0].size(2) * 2, x[0].size(3) * 2); })
      .parity(kExact, kOrder)
      .parity_only()
      .bench({{8, 64, 128, 128}});
  return t;
}

}  // namespace mmfuse::testing
