// The CPU↔CUDA parity harness every op family reuses (after ggml's test-backend-ops: one case,
// run on both backends, compared).
//
// check_parity(f, inputs, tolerance) runs f on float32 copies of `inputs` on the CPU and on
// copies moved to cuda:0, and compares the forward outputs and, after backward with the same
// random output gradient on both sides, the gradient of every floating input. Each comparison
// is the relative error ||cuda - cpu||_2 / ||cpu||_2 (the absolute norm when ||cpu|| is 0),
// computed in double on the host; NaN or infinity where the other side has none fails.
//
// Per-op tolerances are documented in docs/cuda.md (float32: exact arithmetic and max agree
// to the bit; libm-based functions to a few ulps; sums to the rounding of the final cast).
//
// MMF_CUDA_TEST("name") { ... } is a doctest TEST_CASE that, without a visible GPU (or in a
// build without CUDA), prints "no CUDA device visible: skipped" and passes without running.
#pragma once
#include <string>
#include <vector>

#include "tests/gradcheck.h"

namespace mmfuse::testing {

// True when mmfuse was built with CUDA and at least one device is visible.
bool cuda_available();

struct ParityReport {
  bool ok = true;
  std::string message;               // what failed, with the errors and the tolerance
  double forward_error = 0;          // relative error of the output
  std::vector<double> grad_errors;   // per input (0 for inputs without a gradient)
};

// f must return one tensor; inputs are CPU tensors (converted to float32; integer inputs,
// such as labels, are moved unchanged and get no gradient). grad_tolerance < 0: same as
// tolerance. `differentiable` says which inputs get a gradient (empty: every floating one).
ParityReport check_parity(const TensorFn& f, const TensorList& inputs, double tolerance,
                          double grad_tolerance = -1, uint64_t seed = 1234,
                          const std::vector<bool>& differentiable = {});

// The parity run of a table (tests/op_cases/op_case.h): check_parity of every case marked
// kParity with its tolerances, raised to at least min_tolerance (the tf32 runs of linalg and
// conv). Without a visible GPU it runs nothing and says so in one message. Returns how many ran.
int check_parity_cases(const OpTable& table, double min_tolerance = 0);

// ||a - b|| / ||b|| over host copies in double (shapes must match).
double relative_error(const Tensor& a, const Tensor& b);

}  // namespace mmfuse::testing

#define MMF_CUDA_TEST_IMPL(fn, name)                                  \
  static void fn();                                                   \
  TEST_CASE(name) {                                                   \
    if (!::mmfuse::testing::cuda_available()) {                       \
      MESSAGE("no CUDA device visible: skipped");                     \
      return;                                                         \
    }                                                                 \
    fn();                                                             \
  }                                                                   \
  static void fn()
#define MMF_CUDA_TEST(name) MMF_CUDA_TEST_IMPL(MMF_CONCAT(mmf_cuda_test_, __LINE__), name)

// CHECK_PARITY(f, inputs, tolerance[, grad_tolerance]) runs check_parity and reports its
// message on failure.
#define CHECK_PARITY(...)                                                     \
  do {                                                                        \
    auto mmf_parity_ = ::mmfuse::testing::check_parity(__VA_ARGS__);          \
    INFO(mmf_parity_.message);                                                \
    CHECK(mmf_parity_.ok);                                                    \
  } while (0)
