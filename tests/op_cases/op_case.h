// The op-case tables: every case of every op written once, run three ways (after ggml's
// test-backend-ops, where one list of cases drives both the backend comparison and the perf mode).
//
// A case names its op (as in core/op_list.h), says what it exercises, describes its inputs
// (shapes, value ranges, which ones are differentiable, class labels) and calls the op on them.
// One family's cases form a table (tests/op_cases/<family>.cpp). The same table is run
//   1. as a finite-difference gradient check on the CPU in float64 (check_gradient_cases,
//      tests/gradcheck.h; the cases marked kGrad),
//   2. as a CPU<->CUDA parity check in float32, forward and every differentiable input's
//      gradient (check_parity_cases, tests/cuda/cuda_parity.h; the cases marked kParity, each
//      with its tolerances; skipped with a message without a GPU),
//   3. as a forward+backward timing on bench-size inputs (bench/kernels.cpp; the cases given
//      bench shapes).
// tests/engine/test_op_coverage.cpp requires, from these tables, a gradient case and a parity
// case for every op of core/op_list.h.
//
// This file and the tables need no doctest: bench_kernels links them too.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "core/ops.h"

namespace mmfuse::testing {

// One input of a case.
struct Arg {
  Shape shape;
  double low = -1, high = 1;  // values uniform in [low, high)
  bool grad = true;           // differentiable: gradcheck checks it, parity compares its gradient
  bool integers = false;      // values rounded down to integers (ties, for max and max pooling)
  int64_t classes = 0;        // > 0: int32 class labels in [0, classes) instead of values
  bool ignored = false;       // labels: every fifth one is ignore_index
  int64_t ignore_index = -100;
};
// A differentiable input.
Arg in(Shape shape, double low = -1, double high = 1);
// An input the op takes but that gets no gradient (a constant operand, running statistics).
Arg fixed(Shape shape, double low = -1, double high = 1);
// Class labels (int32, never differentiable); with `ignored`, every fifth is ignore_index.
Arg labels(Shape shape, int64_t classes, bool ignored = false, int64_t ignore_index = -100);

// What a case is run for.
enum Run : unsigned { kGrad = 1, kParity = 2 };

using OpFn = std::function<Tensor(const TensorList&)>;

struct OpCase {
  std::string op;    // its name in core/op_list.h
  std::string what;  // what the case exercises, for messages
  std::vector<Arg> args;
  OpFn fn;
  unsigned runs = kGrad | kParity;
  // Parity: the largest relative error of the forward output and of each input gradient
  // (grad_tol < 0: the same as tol). docs/cuda.md says where each figure comes from.
  double tol = 0, grad_tol = -1;
  std::vector<Shape> bench_shapes;  // one per arg: the bench row's inputs (empty: no bench row)
  uint64_t seed = 0;                // of its inputs; set from the family, op and what

  // Chainable settings. grad_only / parity_only run the case one way only (a parity case's
  // shapes are often too large for finite differences, and a few gradient cases need float64).
  OpCase& grad_only() { runs = kGrad; return *this; }
  OpCase& parity_only() { runs = kParity; return *this; }
  OpCase& parity(double forward, double gradient = -1) { tol = forward, grad_tol = gradient; return *this; }
  OpCase& bench(std::vector<Shape> shapes);
  std::string name() const { return op + ": " + what; }
};

struct OpTable {
  std::string family;
  std::deque<OpCase> cases;  // a deque: the reference add returns stays valid as rows are added
  // Adds a case run both ways with tolerances 0; returns it for the settings above.
  OpCase& add(std::string op, std::string what, std::vector<Arg> args, OpFn fn);
};

// The inputs of a case, on `device`: float args in `dtype` (requiring grad where the arg is
// differentiable and `with_grad`), labels in int32, all drawn from the case's seed. `bench`:
// the bench shapes instead of the case's.
TensorList make_inputs(const OpCase& c, DType dtype, bool with_grad = true, bool bench = false,
                       Device device = Device::cpu());
// Which of its inputs are differentiable, in order.
std::vector<bool> grad_mask(const OpCase& c);

// One table per family (tests/op_cases/<family>.cpp).
OpTable elementwise_cases();
OpTable reduce_cases();
OpTable linalg_cases();
OpTable conv_cases();
OpTable pool_cases();
OpTable resize_cases();
OpTable norm_cases();
OpTable loss_cases();
OpTable shape_cases();
OpTable fusion_cases();
// All of them, in that order.
std::vector<OpTable> all_op_tables();

}  // namespace mmfuse::testing
