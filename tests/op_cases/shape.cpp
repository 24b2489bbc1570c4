// Shape ops (reshape, narrow, concat, split, slice, pad, crop; backward is the adjoint copy) on
// odd shapes, along every dim, with steps, negative bounds and pads, empty pieces, unused
// outputs, views at unaligned offsets (the scalar path of the CUDA block copy) as well as
// 16-byte aligned rows (the vector path). A copy moves bits: every parity tolerance is 0.
#include "tests/op_cases/op_case.h"

namespace mmfuse::testing {

OpTable shape_cases() {
  OpTable t{"shape", {}};
  // reshape and narrow (views): through a product, so the gradient is not the identity.
  t.add("reshape", "[3, 5] as [5, 3] times [5, 3]", {in({3, 5}), in({5, 3})},
        [](const TensorList& x) { return mul(x[0].reshape({5, 3}), x[1]); });
  t.add("reshape", "[7, 37] as [37, 7]", {in({7, 37})}, [](const TensorList& x) { return x[0].reshape({37, 7}) * 2.0; })
      .parity_only();
  t.add("narrow", "rows [1, 4) of [5, 3, 2]", {in({5, 3, 2})}, [](const TensorList& x) { return x[0].narrow(1, 3) * 2.0; });
  t.add("narrow", "rows [3, 8) of [9, 37] (an unaligned view)", {in({9, 37})},
        [](const TensorList& x) { return x[0].narrow(3, 5) * 2.0; })
      .parity_only();

  auto cat = [](int64_t dim) { return [dim](const TensorList& x) { return concat(x, dim); }; };
  t.add("concat", "[3, 2, 5], [3, 1, 5], [3, 4, 5] along 1", {in({3, 2, 5}), in({3, 1, 5}), in({3, 4, 5})}, cat(1));
  t.add("concat", "[3, 5], [1, 5] along 0", {in({3, 5}), in({1, 5})}, cat(0));
  t.add("concat", "[2, 3, 3], [2, 3, 7] along -1", {in({2, 3, 3}), in({2, 3, 7})}, cat(-1));
  t.add("concat", "[3, 5] and a [3, 2] without gradient along 1", {in({3, 5}), fixed({3, 2})}, cat(1));
  // Every dim of [3, 8, 4] (rows of 32 floats: the vector path along 0 or 1) and odd shapes.
  for (const Shape& s : std::vector<Shape>{{3, 5, 7}, {3, 8, 4}, {1, 1, 1}, {2, 3, 37, 9}})
    for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
      Shape b = s, c = s;
      b[d] += 2;
      c[d] = 1;
      t.add("concat", "variants of " + shape_str(s) + " along " + std::to_string(d), {in(s), in(b), in(c)}, cat(d))
          .parity_only();
    }
  t.add("concat", "[3, 5] and an empty [3, 0] along -1", {in({3, 5}), in({3, 0})}, cat(-1));
  t.add("concat", "[3, 2^20] and [3, 12345] along 1 (64-bit-safe planning, vector path)",
        {in({3, 1 << 20}), in({3, 12345})}, cat(1))
      .parity_only()
      .bench({{64, 1 << 16}, {64, 1 << 16}});

  // split: every output matters (reassembled in another order, each scaled differently).
  for (int64_t dim : {0, 1, 2}) {
    Shape s = {5, 7, 3};
    s[dim] = 7;
    t.add("split", "{2, 1, 4} of " + shape_str(s) + " along " + std::to_string(dim) + ", reassembled", {in(s)},
          [dim](const TensorList& x) {
            TensorList p = split(x[0], {2, 1, 4}, dim);
            return concat({p[2] * 3.0, p[0], p[1] * -2.0}, dim);
          });
  }
  t.add("split", "{3, 2} of [3, 5] along 1, the first unused", {in({3, 5})},
        [](const TensorList& x) { return split(x[0], {3, 2}, 1)[1] * 2.0; });
  t.add("split", "split_equal of [5, 9] in 3 along -1", {in({5, 9})}, [](const TensorList& x) {
    TensorList p = split_equal(x[0], 3, -1);
    return p[0] * 0.5 + p[1] * 2.0 - p[2];
  });
  const Shape big = {7, 9, 11};
  for (int64_t d = 0; d < 3; ++d) {
    std::vector<int64_t> sizes = {2, big[d] - 5, 3};
    for (size_t piece = 0; piece < sizes.size(); ++piece)
      t.add("split", "[7, 9, 11] along " + std::to_string(d) + ", piece " + std::to_string(piece), {in(big)},
            [d, sizes, piece](const TensorList& x) { return split(x[0], sizes, d)[piece]; })
          .parity_only();
  }
  t.add("split", "split_equal of [6, 8, 4] in 2 along 1 (vector path)", {in({6, 8, 4})},
        [](const TensorList& x) { return split_equal(x[0], 2, 1)[1]; })
      .parity_only();

  struct Slice {
    Shape s;
    int64_t dim, start, end, step;
    unsigned runs;
  };
  const std::vector<Slice> slices = {
      {{3, 7, 5}, 1, 1, 7, 2, kGrad | kParity}, {{7, 3}, 0, -4, 100, 3, kGrad | kParity},
      {{3, 5}, -1, 1, -1, 1, kGrad | kParity},  {{5, 9, 11}, 0, 1, 6, 2, kParity},
      {{5, 9, 11}, 1, -7, -1, 3, kParity},      {{5, 9, 11}, 2, 0, 11, 1, kParity},
      {{5, 9, 11}, 2, 3, 100, 4, kParity},      {{5, 9, 11}, 1, 5, 2, 1, kParity},
      {{5, 9, 11}, -1, 1, 9, 1, kParity}};
  for (const Slice& c : slices) {
    int64_t dim = c.dim, start = c.start, end = c.end, step = c.step;
    t.add("slice",
          shape_str(c.s) + " dim " + std::to_string(dim) + " [" + std::to_string(start) + ", " + std::to_string(end) +
              ") step " + std::to_string(step),
          {in(c.s)}, [=](const TensorList& x) { return slice(x[0], dim, start, end, step); })
        .runs = c.runs;
  }
  t.add("slice", "of a view at an odd offset", {in({7, 37})},
        [](const TensorList& x) { return slice(x[0].narrow(1, 5), 1, 2, 31); })
      .parity_only();

  struct Pad {
    Shape s;
    std::vector<int64_t> pads;
    double value;
    unsigned runs;
  };
  const std::vector<Pad> pads = {{{3, 5}, {1, 2}, 0.5, kGrad | kParity},
                                 {{3, 5, 7}, {2, -3, -1, 1, 0, 2}, 0, kGrad | kParity},
                                 {{3, 7, 9}, {1, 2}, 0.5, kParity},
                                 {{3, 7, 9}, {0, 3, 2, 0}, 0.5, kParity},
                                 {{3, 7, 9}, {-1, 2, 1, -2}, 0.5, kParity},
                                 {{3, 7, 9}, {2, 2, 1, 1, 1, 0}, 0.5, kParity},
                                 {{3, 7, 9}, {-3, -4}, 0.5, kParity}};
  for (const Pad& p : pads) {
    std::vector<int64_t> by = p.pads;
    double value = p.value;
    t.add("pad", shape_str(p.s) + " by " + shape_str(by), {in(p.s)},
          [by, value](const TensorList& x) { return pad(x[0], by, value); })
        .runs = p.runs;
  }
  t.cases.back().bench({{64, 256, 256}});

  struct Crop {
    Shape s;
    std::vector<int64_t> offsets;
    Shape size;
    unsigned runs;
  };
  const std::vector<Crop> crops = {{{5, 5, 7}, {1, 0, 2}, {3, 5, 3}, kGrad | kParity},
                                   {{3, 5}, {2, 1}, {1, 3}, kGrad | kParity},
                                   {{3, 3, 9, 11}, {1, 0, 2, 3}, {2, 3, 5, 4}, kParity},
                                   {{5, 16}, {0, 4}, {5, 8}, kParity}};
  for (const Crop& c : crops) {
    std::vector<int64_t> offsets = c.offsets;
    Shape size = c.size;
    t.add("crop", shape_str(c.s) + " at " + shape_str(offsets) + " size " + shape_str(size), {in(c.s)},
          [offsets, size](const TensorList& x) { return crop(x[0], offsets, size); })
        .runs = c.runs;
  }
  return t;
}

}  // namespace mmfuse::testing
