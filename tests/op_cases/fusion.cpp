// The fusion ops on modality-stacked tensors [M*N, C, ...]: channel_shuffle and pixel_shift_add
// (2 and 3 modalities, receiver subsets, keep ratios, shift groups and distances; inner sizes
// for both the scalar and the 16-byte vector paths of the CUDA kernels), channel_gate (either
// operand constant), modality_ensemble (detached or not) and modality_stack. Parity tolerances
// (docs/cuda.md): channel_shuffle, pixel_shift_add and modality_stack move or add the same
// floats as the CPU, forward and backward: 0. channel_gate evaluates the sigmoid with CUDA's
// exp (a few ulps from glibc's) and sums dy * x in double in another order: 2e-6.
// modality_ensemble accumulates in double (FMA contraction aside) and its alpha gradient goes
// through exp and a reduction: 2e-6.
#include "tests/op_cases/op_case.h"

namespace mmfuse::testing {

namespace {

constexpr double kLibm = 2e-6;

std::string stack_str(int64_t modalities, const std::vector<int64_t>& receivers) {
  return "modalities " + std::to_string(modalities) + (receivers.empty() ? "" : " receivers " + shape_str(receivers));
}

}  // namespace

OpTable fusion_cases() {
  OpTable t{"fusion", {}};
  struct Stack {
    int64_t modalities;
    std::vector<int64_t> receivers;
  };
  const std::vector<Stack> stacks = {{2, {}}, {2, {1}}, {3, {}}, {3, {0, 2}}, {1, {}}};

  // channel_shuffle: gradient cases, then the parity grid (inner sizes 99, 20, 1 and 12).
  struct Shuffle {
    Shape shape;
    int64_t modalities;
    double keep;
    std::vector<int64_t> receivers;
  };
  std::vector<Shuffle> shuffles = {
      {{6, 7, 5}, 2, 0.8, {}},   {{6, 7, 5}, 2, 0.8, {0}},     {{6, 7, 5}, 2, 0.8, {1}},
      {{3, 11, 3}, 3, 0.8, {}},  {{3, 11, 3}, 3, 0.8, {0, 2}}, {{3, 11, 3}, 3, 0.5, {1}},
      {{4, 9}, 2, 0.8, {}},      {{2, 7, 1, 3, 3}, 2, 0.75, {}}, {{3, 5, 7}, 1, 0.8, {0}}};
  for (const Shape& s : std::vector<Shape>{{6, 37, 9, 11}, {6, 37, 4, 5}, {6, 37}, {6, 4, 3}})
    for (const Stack& st : stacks)
      for (double keep : {0.8, 0.5, 1.0, 0.0}) shuffles.push_back({s, st.modalities, keep, st.receivers});
  for (size_t i = 0; i < shuffles.size(); ++i) {
    const Shuffle& c = shuffles[i];
    Shuffle k = c;
    t.add("channel_shuffle",
          shape_str(c.shape) + " " + stack_str(c.modalities, c.receivers) + " keep " + std::to_string(c.keep),
          {in(c.shape)},
          [k](const TensorList& x) { return channel_shuffle(x[0], k.modalities, k.keep, k.receivers); })
        .runs = i < 9 ? kGrad | kParity : kParity;
  }

  // pixel_shift_add: gradient cases, then the parity grid (width 11: scalar path, 12: vector
  // path; groups > 4 double the distance).
  struct Shift {
    Shape shape;
    int64_t modalities, groups, shift;
    std::vector<int64_t> receivers;
  };
  std::vector<Shift> shifts = {{{2, 5, 3, 5}, 2, 4, 1, {}},  {{2, 5, 3, 5}, 2, 4, 2, {}},  {{2, 7, 3, 3}, 2, 4, 1, {0}},
                               {{2, 7, 3, 3}, 2, 4, 1, {1}}, {{3, 6, 3, 5}, 3, 4, 1, {}},  {{3, 6, 5, 3}, 3, 4, 2, {0, 2}},
                               {{2, 13, 3, 3}, 2, 5, 1, {}}, {{4, 5, 3, 3}, 2, 2, 1, {}}};
  for (const Shape& s : std::vector<Shape>{{6, 37, 9, 11}, {6, 37, 9, 12}, {6, 3, 5, 5}, {6, 40, 3, 8}})
    for (const Stack& st : stacks)
      for (auto [groups, shift] : std::vector<std::pair<int64_t, int64_t>>{{4, 1}, {4, 2}, {6, 1}, {1, 3}, {9, 5}})
        shifts.push_back({s, st.modalities, groups, shift, st.receivers});
  for (size_t i = 0; i < shifts.size(); ++i) {
    const Shift& c = shifts[i];
    Shift k = c;
    t.add("pixel_shift_add",
          shape_str(c.shape) + " " + stack_str(c.modalities, c.receivers) + " groups " + std::to_string(c.groups) +
              " shift " + std::to_string(c.shift),
          {in(c.shape), in(c.shape)},
          [k](const TensorList& x) { return pixel_shift_add(x[0], x[1], k.modalities, k.groups, k.shift, k.receivers); })
        .runs = i < 8 ? kGrad | kParity : kParity;
  }
  auto shift2 = [](const TensorList& x) { return pixel_shift_add(x[0], x[1], 2); };
  t.add("pixel_shift_add", "[2, 5, 3, 3] gradient into a only", {fixed({2, 5, 3, 3}), in({2, 5, 3, 3})}, shift2);
  t.add("pixel_shift_add", "[2, 5, 3, 3] gradient into y only", {in({2, 5, 3, 3}), fixed({2, 5, 3, 3})}, shift2);

  // channel_gate: inner 99, 20 (vector path), 1 ([N, C]), and few planes with a long inner run
  // (the per-plane reduction cut into chunks, their partials folded in order).
  // The first four shapes also check the gradient (one operand constant: on [3, 5] only).
  const std::vector<Shape> gates = {{3, 5},       {3, 5, 1, 3}, {2, 3, 3, 1, 5}, {1, 7, 5},        {6, 37, 9, 11},
                                    {5, 7, 4, 5}, {6, 37},      {3, 5, 7},       {1, 2, 300, 301}};
  for (size_t i = 0; i < gates.size(); ++i)
    for (double scale : {1.0, 2.0}) {
      const Shape& s = gates[i];
      auto gate = [scale](const TensorList& x) { return channel_gate(x[0], x[1], scale); };
      std::string what = shape_str(s) + " scale " + std::to_string(scale);
      unsigned runs = i < 4 ? kGrad | kParity : kParity, one_operand = i == 0 && scale == 2.0 ? runs : kParity;
      t.add("channel_gate", what, {in(s), in({s[0], s[1]}, -3, 3)}, gate).parity(kLibm).runs = runs;
      t.add("channel_gate", what + ", e constant (dx only)", {in(s), fixed({s[0], s[1]}, -3, 3)}, gate)
          .parity(kLibm)
          .runs = one_operand;
      t.add("channel_gate", what + ", x constant (de only)", {fixed(s), in({s[0], s[1]}, -3, 3)}, gate)
          .parity(kLibm)
          .runs = one_operand;
    }

  // modality_ensemble: logits and alpha; detached, the logits get no gradient.
  // The gradient cases: [6, 5] with 2 modalities, [3, 3, 5] with 3, [2, 7, 1, 3] with 2.
  auto gradient_case = [](const Shape& s, int64_t m) {
    return (s == Shape{6, 5} && m == 2) || (s == Shape{3, 3, 5} && m == 3) || (s == Shape{2, 7, 1, 3} && m == 2);
  };
  for (const Shape& s : std::vector<Shape>{{6, 5}, {3, 3, 5}, {2, 7, 1, 3}, {6, 37}, {6, 37, 9, 11}, {4, 10}, {3, 5, 7}})
    for (int64_t m : {1, 2, 3}) {
      if (s[0] % m != 0) continue;
      for (bool detach : {true, false}) {
        std::string what = shape_str(s) + " modalities " + std::to_string(m) + (detach ? " detached" : "");
        t.add("modality_ensemble", what, {detach ? fixed(s, -4, 4) : in(s, -4, 4), in({m}, -2, 2)},
              [m, detach](const TensorList& x) { return modality_ensemble(x[0], x[1], m, detach); })
            .parity(kLibm)
            .runs = gradient_case(s, m) ? kGrad | kParity : kParity;
      }
    }
  t.add("modality_ensemble", "[6, 37, 9, 11] modalities 2, alpha constant", {in({6, 37, 9, 11}, -4, 4), fixed({2}, -2, 2)},
        [](const TensorList& x) { return modality_ensemble(x[0], x[1], 2, false); })
      .parity(kLibm)
      .parity_only();

  auto stack = [](const TensorList& x) { return modality_stack(x); };
  t.add("modality_stack", "three [3, 5]", {in({3, 5}), in({3, 5}), in({3, 5})}, stack);
  t.add("modality_stack", "two [1, 3, 7]", {in({1, 3, 7}), in({1, 3, 7})}, stack);
  t.add("modality_stack", "three [3, 5, 7]", {in({3, 5, 7}), in({3, 5, 7}), in({3, 5, 7})}, stack).parity_only();

  // Bench rows: AsymFusion's stacked activations, 2 modalities x 16 samples of [256, 64, 64].
  const Shape fs = {32, 256, 64, 64};
  for (OpCase& c : t.cases) {
    if (c.op == "channel_shuffle" && c.what == "[6, 37, 9, 11] modalities 2 keep 0.800000") c.bench({fs});
    if (c.op == "pixel_shift_add" && c.what == "[6, 37, 9, 11] modalities 2 groups 4 shift 1") c.bench({fs, fs});
    if (c.op == "channel_gate" && c.what == "[6, 37, 9, 11] scale 2.000000") c.bench({fs, {32, 256}});
    if (c.op == "modality_ensemble" && c.what == "[6, 37, 9, 11] modalities 2") c.bench({fs, {2}});
  }
  return t;
}

}  // namespace mmfuse::testing
