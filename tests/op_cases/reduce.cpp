// sum, mean and max over every kind of dims (inner, outer, middle, several, all; keepdim), on
// odd and non-multiple-of-32 shapes. Parity tolerances (docs/cuda.md): sums are accumulated in
// double on both sides, so they differ by the rounding of the final cast only; max and its
// gradient agree to the bit.
#include "tests/op_cases/op_case.h"

namespace mmfuse::testing {

namespace {

constexpr double kSum = 1e-6;
constexpr double kExact = 0;

std::string dims_str(const std::vector<int64_t>& dims, bool keepdim) {
  std::string s = "dims {";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : " ") + std::to_string(dims[i]);
  return s + (dims.empty() ? "}" : " }") + (keepdim ? " keepdim" : "");
}

}  // namespace

OpTable reduce_cases() {
  OpTable t{"reduce", {}};
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
    bool keepdim;
    std::string grad;  // the ops that also check their gradient on it (small shapes)
  };
  const std::vector<Case> cases = {
      {{3, 37, 129}, {}, false, ""},    {{3, 37, 129}, {0}, false, ""},   {{3, 37, 129}, {1}, true, ""},
      {{3, 37, 129}, {2}, false, ""},   {{3, 37, 129}, {0, 2}, true, ""}, {{3, 37, 129}, {-1, 0}, false, ""},
      {{1000003}, {}, false, ""},       {{1000003}, {0}, true, ""},       {{4, 5, 7, 9}, {0, 2, 3}, true, ""},
      {{2000, 3}, {1}, false, ""},      {{2000, 3}, {0}, false, ""},      {{5, 3001}, {1}, false, ""},
      {{7}, {0}, false, ""},            {{1, 1, 5}, {1}, false, ""},      {{33, 1, 65}, {0, 1}, false, ""},
      {{3, 5}, {}, false, "sum"},       {{3, 5, 7}, {0, 2}, false, "sum"}, {{2, 3, 5}, {1}, true, "sum"},
      {{3, 5, 7}, {-1}, false, "mean"}, {{7, 3}, {}, false, "mean"},      {{3, 5, 7}, {1}, false, "max"},
      {{3, 5, 7}, {0, 2}, true, "max"}};
  for (const Case& c : cases) {
    std::string what = shape_str(c.shape) + " " + dims_str(c.dims, c.keepdim);
    std::vector<int64_t> dims = c.dims;
    bool keep = c.keepdim;
    OpCase& s = t.add("sum", what, {in(c.shape)}, [dims, keep](const TensorList& x) { return sum(x[0], dims, keep); });
    OpCase& m = t.add("mean", what, {in(c.shape)}, [dims, keep](const TensorList& x) { return mean(x[0], dims, keep); });
    OpCase& x = t.add("max", what, {in(c.shape)}, [dims, keep](const TensorList& x) { return max(x[0], dims, keep); });
    s.parity(kSum, kExact);
    m.parity(kSum, kSum);
    x.parity(kExact, kExact);
    for (OpCase* p : {&s, &m, &x})
      if (p->op != c.grad) p->parity_only();
  }
  for (OpCase& c : t.cases) {
    if (c.args[0].shape != Shape{1000003} || c.what.find("{}") == std::string::npos) continue;
    c.bench({{1 << 22}});  // all of a 16 MiB vector
  }
  t.add("sum", "[4096, 1024] over dim 1", {in({4096, 1024})}, [](const TensorList& x) { return sum(x[0], {1}); })
      .parity(kSum, kExact)
      .parity_only()
      .bench({{4096, 1024}});
  t.add("sum", "[1024, 4096] over dim 0", {in({1024, 4096})}, [](const TensorList& x) { return sum(x[0], {0}); })
      .parity(kSum, kExact)
      .parity_only()
      .bench({{1024, 4096}});
  return t;
}

}  // namespace mmfuse::testing
