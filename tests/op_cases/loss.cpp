// softmax and log_softmax over any dim, cross_entropy (ignore_index, every reduction, spatial
// targets, an unbatched [K] input) and the pointwise l1 and mse losses (every reduction).
// Parity tolerances (docs/cuda.md): exponentials and logarithms differ by a few ulps between
// CUDA's libm and glibc (2e-6); loss sums accumulate in double on both sides (1e-6 after the
// cast), and the pointwise gradients agree to the bit.
#include "tests/op_cases/op_case.h"

namespace mmfuse::testing {

namespace {

constexpr double kLibm = 2e-6;
constexpr double kSum = 1e-6;

const char* reduction_name(Reduction r) {
  return r == Reduction::mean ? "mean" : r == Reduction::sum ? "sum" : "none";
}

// Small enough for finite differences (their cost grows with the square of the size).
bool small(const Shape& s) { return shape_numel(s) <= 105; }

}  // namespace

OpTable loss_cases() {
  OpTable t{"loss", {}};
  struct Soft {
    Shape x;
    int64_t dim;
  };
  const std::vector<Soft> soft = {{{3, 5}, 0},    {{3, 5}, 1},     {{3, 5}, -1},    {{3, 5, 7}, 0},
                                  {{3, 5, 7}, 1}, {{3, 5, 7}, -1}, {{7}, 0},        {{5, 37}, 1},
                                  {{5, 37}, 0},   {{3, 7, 33}, 1}, {{2, 3, 5, 7}, -1}, {{129, 1000}, 1}};
  for (const Soft& c : soft) {
    int64_t d = c.dim;
    std::string what = shape_str(c.x) + " dim " + std::to_string(d);
    OpCase& s = t.add("softmax", what, {in(c.x, -3, 3)}, [d](const TensorList& x) { return softmax(x[0], d); });
    OpCase& l = t.add("log_softmax", what, {in(c.x, -3, 3)}, [d](const TensorList& x) { return log_softmax(x[0], d); });
    for (OpCase* p : {&s, &l}) {
      p->parity(kLibm);
      if (!small(c.x) || c.x.size() == 1) p->parity_only();
    }
  }

  struct Ce {
    Shape logits, target;
    int64_t classes;
    bool ignored;
    int64_t ignore_index;
  };
  const std::vector<Ce> ce = {{{7, 5}, {7}, 5, true, -100},         {{3, 3, 1, 5}, {3, 1, 5}, 3, true, 255},
                              {{7}, {}, 7, false, -100},            {{5, 3}, {5}, 3, false, -100},
                              {{5, 3}, {5}, 3, true, -100},         {{33, 10}, {33}, 10, false, -100},
                              {{33, 10}, {33}, 10, true, -100},     {{3, 7, 5, 9}, {3, 5, 9}, 7, false, -100},
                              {{3, 7, 5, 9}, {3, 5, 9}, 7, true, -100}};
  for (size_t i = 0; i < ce.size(); ++i)  // the first two also check the gradient
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      const Ce& c = ce[i];
      int64_t ignore = c.ignore_index;
      std::string what = shape_str(c.logits) + (c.ignored ? " ignoring " + std::to_string(ignore) : "") + " " +
                         reduction_name(r);
      OpCase& x = t.add("cross_entropy", what, {in(c.logits, -3, 3), labels(c.target, c.classes, c.ignored, ignore)},
                        [ignore, r](const TensorList& x) { return cross_entropy(x[0], x[1], ignore, r); });
      x.parity(kLibm);
      if (i >= 2) x.parity_only();
    }

  for (const Shape& s : std::vector<Shape>{{7}, {3, 5}, {3, 1, 5}, {3, 37, 129}, {1000003}})
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      std::string what = shape_str(s) + " " + reduction_name(r);
      OpCase& l1 = t.add("l1_loss", what, {in(s), in(s)}, [r](const TensorList& x) { return l1_loss(x[0], x[1], r); });
      OpCase& l2 = t.add("mse_loss", what, {in(s), in(s)}, [r](const TensorList& x) { return mse_loss(x[0], x[1], r); });
      for (OpCase* p : {&l1, &l2}) {
        p->parity(kSum, 0);
        if (!small(s)) p->parity_only();
        if (s == Shape{1000003} && r == Reduction::mean) p->bench({{1 << 22}, {1 << 22}});
      }
    }
  for (OpCase& c : t.cases) {
    if ((c.op == "softmax" || c.op == "log_softmax") && c.what == "[129, 1000] dim 1") c.bench({{4096, 1024}});
    if (c.op == "cross_entropy" && c.what == "[33, 10] ignoring -100 mean") c.bench({{256, 1000}, {256}});
    if (c.op == "cross_entropy" && c.what == "[3, 7, 5, 9] mean") c.bench({{8, 21, 128, 128}, {8, 128, 128}});
  }
  return t;
}

}  // namespace mmfuse::testing
