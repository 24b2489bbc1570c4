// max_pool2d, avg_pool2d (with and without the padding in the divisor) and global_avg_pool on
// odd shapes: overlapping windows, padding, ceil mode, rectangular windows, ties. Parity
// tolerances (docs/cuda.md): max pooling agrees to the bit (the same element chosen, gathers
// add the same terms); average pooling forward to the bit, backward to the order of its
// gather (1e-6); global average pooling accumulates in double on both sides (1e-6).
#include "tests/op_cases/op_case.h"

namespace mmfuse::testing {

namespace {

constexpr double kExact = 0;
constexpr double kOrder = 1e-6;

std::string options_str(const Pool2dOptions& o) {
  return "kernel " + std::to_string(o.kernel_h) + "x" + std::to_string(o.kernel_w) + " stride " +
         std::to_string(o.stride_h) + "x" + std::to_string(o.stride_w) + " pad " + std::to_string(o.pad_h) + "x" +
         std::to_string(o.pad_w) + (o.ceil_mode ? " ceil" : "") + (o.count_include_pad ? "" : " excluding pad");
}

}  // namespace

OpTable pool_cases() {
  OpTable t{"pool", {}};
  auto add_both = [&t](const Shape& shape, Pool2dOptions o, unsigned runs) {
    std::string what = shape_str(shape) + " " + options_str(o);
    if (o.count_include_pad)  // max pooling has no divisor: one case per window
      t.add("max_pool2d", what, {in(shape)}, [o](const TensorList& x) { return max_pool2d(x[0], o); }).runs = runs;
    t.add("avg_pool2d", what, {in(shape)}, [o](const TensorList& x) { return avg_pool2d(x[0], o); })
        .parity(kExact, kOrder)
        .runs = runs;
  };
  // Gradient cases on [2, 3, 7, 5] (average pooling with and without the padding counted).
  for (Pool2dOptions o : {Pool2dOptions::square(3, 2, 1), Pool2dOptions::square(3, 2, 1, true),
                          Pool2dOptions::square(2, 2, 0, true), Pool2dOptions{3, 2, 1, 2, 1, 0},
                          Pool2dOptions::square(2, 2, 1, true)})
    for (bool include_pad : {true, false}) {
      o.count_include_pad = include_pad;
      add_both({2, 3, 7, 5}, o, kGrad);
    }
  t.add("max_pool2d", "[1, 1, 3, 3] one window", {in({1, 1, 3, 3})},
        [](const TensorList& x) { return max_pool2d(x[0], Pool2dOptions::square(3, 3)); });
  // Parity cases.
  Pool2dOptions rect = Pool2dOptions::square(3, 2, 1);
  rect.kernel_w = 5, rect.stride_w = 3, rect.pad_w = 2;
  Pool2dOptions excluding = Pool2dOptions::square(3, 2, 1, true);
  excluding.count_include_pad = false;
  const std::vector<std::pair<Shape, Pool2dOptions>> parity = {
      {{2, 3, 7, 9}, Pool2dOptions::square(2, 2)},         {{2, 3, 7, 9}, Pool2dOptions::square(3, 2, 1)},
      {{1, 5, 13, 11}, Pool2dOptions::square(3, 1, 1)},    {{3, 2, 9, 9}, Pool2dOptions::square(3, 2, 0, true)},
      {{2, 3, 11, 13}, excluding},                         {{1, 33, 17, 35}, rect},
      {{1, 1, 1, 1}, Pool2dOptions::square(1, 1)}};
  for (const auto& [shape, o] : parity) {
    // The case excluding the padding is an avg_pool2d case; its max_pool2d twin counts it in.
    Pool2dOptions m = o;
    m.count_include_pad = true;
    t.add("max_pool2d", shape_str(shape) + " " + options_str(m), {in(shape)},
          [m](const TensorList& x) { return max_pool2d(x[0], m); })
        .parity_only();
    t.add("avg_pool2d", shape_str(shape) + " " + options_str(o), {in(shape)},
          [o](const TensorList& x) { return avg_pool2d(x[0], o); })
        .parity(kExact, kOrder)
        .parity_only();
  }
  // Values in {0, 1, 2}: most windows hold ties, and both devices must pick the same element.
  Arg ties = in({2, 3, 9, 11}, 0, 3);
  ties.integers = true;
  t.add("max_pool2d", "ties, [2, 3, 9, 11] kernel 3 stride 1 pad 1", {ties},
        [](const TensorList& x) { return max_pool2d(x[0], Pool2dOptions::square(3, 1, 1)); })
      .parity_only();

  for (const Shape& s : std::vector<Shape>{{3, 5}, {2, 3, 7, 5}, {1, 3, 3, 5, 7}})
    t.add("global_avg_pool", shape_str(s), {in(s)}, [](const TensorList& x) { return global_avg_pool(x[0]); })
        .parity(kOrder, kOrder);
  t.add("global_avg_pool", "[2, 3, 5, 7] keepdim", {in({2, 3, 5, 7})},
        [](const TensorList& x) { return global_avg_pool(x[0], true); })
      .parity(kOrder, kOrder);
  for (const Shape& s : std::vector<Shape>{{2, 3, 7, 9}, {3, 5, 1, 1}, {2, 65, 33, 17}, {4, 7, 1000}})
    for (bool keepdim : {false, true})
      t.add("global_avg_pool", shape_str(s) + (keepdim ? " keepdim" : ""), {in(s)},
            [keepdim](const TensorList& x) { return global_avg_pool(x[0], keepdim); })
          .parity(kOrder, kOrder)
          .parity_only();

  // Bench rows: a ResNet stem's pooling on [16, 64, 112, 112].
  t.add("max_pool2d", "[2, 3, 7, 9] kernel 3 stride 2 pad 1 (a ResNet stem)", {in({2, 3, 7, 9})},
        [](const TensorList& x) { return max_pool2d(x[0], Pool2dOptions::square(3, 2, 1)); })
      .parity_only()
      .bench({{16, 64, 112, 112}});
  t.add("avg_pool2d", "[2, 3, 7, 9] kernel 3 stride 1 pad 1", {in({2, 3, 7, 9})},
        [](const TensorList& x) { return avg_pool2d(x[0], Pool2dOptions::square(3, 1, 1)); })
      .parity(kExact, kOrder)
      .parity_only()
      .bench({{16, 64, 112, 112}});
  t.add("global_avg_pool", "[2, 3, 7, 9], bench size [64, 512, 14, 14]", {in({2, 3, 7, 9})},
        [](const TensorList& x) { return global_avg_pool(x[0]); })
      .parity(kOrder, kOrder)
      .parity_only()
      .bench({{64, 512, 14, 14}});
  return t;
}

}  // namespace mmfuse::testing
