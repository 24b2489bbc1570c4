// matmul (2-d, batched, a 2-d operand broadcast over the batch on either side, empty sizes)
// and linear (with and without bias, 1-d to 4-d inputs, an input without gradient) on odd and
// non-multiple-of-32 sizes. Parity tolerances (docs/cuda.md): fp32 products differ from
// OpenBLAS only by summation order (1e-5 relative); tests/cuda/test_cuda_linalg.cpp reruns the
// table in tf32 at 5e-3.
#include "tests/op_cases/op_case.h"

namespace mmfuse::testing {

namespace {

constexpr double kFp32 = 1e-5;

}  // namespace

OpTable linalg_cases() {
  OpTable t{"linalg", {}};
  auto mm = [](const TensorList& x) { return matmul(x[0], x[1]); };
  struct Pair {
    Shape a, b;
    unsigned runs;
  };
  const std::vector<Pair> pairs = {
      {{5, 7}, {7, 3}, kGrad | kParity},     {{1, 3}, {3, 1}, kGrad},           {{3, 5, 7}, {3, 7, 2}, kGrad},
      {{3, 5, 7}, {7, 3}, kGrad | kParity},  {{5, 3}, {3, 3, 7}, kGrad},        {{7, 5}, {5, 3}, kParity},
      {{1, 1}, {1, 1}, kGrad | kParity},     {{33, 65}, {65, 17}, kParity},     {{129, 257}, {257, 31}, kParity},
      {{3, 7, 5}, {3, 5, 9}, kParity},       {{3, 7, 5}, {5, 9}, kParity},      {{7, 5}, {3, 5, 9}, kParity},
      {{5, 33, 1}, {5, 1, 37}, kParity},     {{2, 31, 127}, {127, 63}, kParity}, {{4, 0, 5}, {4, 5, 3}, kParity},
      {{6, 0}, {0, 5}, kParity}};
  for (const Pair& p : pairs) t.add("matmul", shape_str(p.a) + " x " + shape_str(p.b), {in(p.a), in(p.b)}, mm).runs = p.runs;
  t.add("matmul", "[2, 5, 7] x a [7, 3] without gradient", {in({2, 5, 7}), fixed({7, 3})}, mm);
  for (OpCase& c : t.cases)
    if (c.what == "[129, 257] x [257, 31]") c.bench({{1024, 1024}, {1024, 1024}});

  auto lin = [](const TensorList& x) { return linear(x[0], x[1], x[2]); };
  auto lin_nobias = [](const TensorList& x) { return linear(x[0], x[1]); };
  struct Lin {
    Shape x;
    int64_t out;
    bool bias;
    unsigned runs;
  };
  const std::vector<Lin> lins = {{{5, 7}, 3, true, kGrad | kParity}, {{2, 3, 5}, 7, false, kGrad | kParity},
                                 {{7}, 3, true, kGrad | kParity},    {{5}, 3, true, kParity},
                                 {{7, 5}, 3, false, kParity},        {{3, 7, 33}, 65, true, kParity},
                                 {{129, 257}, 31, true, kParity},    {{2, 3, 5, 7}, 9, false, kParity}};
  for (const Lin& l : lins) {
    std::string what = shape_str(l.x) + " -> " + std::to_string(l.out) + (l.bias ? " with bias" : "");
    std::vector<Arg> args = {in(l.x), in({l.out, l.x.back()})};
    if (l.bias) args.push_back(in({l.out}));
    t.add("linear", what, args, l.bias ? OpFn(lin) : OpFn(lin_nobias)).runs = l.runs;
  }
  // The first layer of a net: its input needs no gradient.
  t.add("linear", "[3, 5] -> 3 with bias, input without gradient", {fixed({3, 5}), in({3, 5}), in({3})}, lin);
  for (OpCase& c : t.cases)
    if (c.what == "[129, 257] -> 31 with bias") c.bench({{256, 1024}, {1024, 1024}, {1024}});
  for (OpCase& c : t.cases) c.parity(kFp32);
  return t;
}

}  // namespace mmfuse::testing
