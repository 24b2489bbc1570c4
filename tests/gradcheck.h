// The finite-difference gradient checker (after Caffe's GradientChecker and Flashlight's
// Jacobian tests), and its run over an op-case table (tests/op_cases/op_case.h).
//
// gradcheck(f, inputs) builds the scalar L = Σ f(inputs) ⊙ R for a fixed random R, takes
// dL/dx by autograd (backward from f with gradient R), and compares it with central
// differences in float64 for every element of every input that requires grad. Kinks (relu at
// 0, max at ties, clamp at its bounds) are detected, not configured: where the one-sided
// differences left and right of x disagree, x sits within eps of a kink and is skipped.
//
// Also the comparisons the suites share: check_close (values against expected ones) and
// check_net_grad (gradcheck of a whole net's tops).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/ops.h"
#include "doctest/doctest.h"
#include "tests/op_cases/op_case.h"

namespace mmfuse {
class Net;
}

namespace mmfuse::testing {

struct GradcheckOptions {
  double eps = 1e-6;
  double rtol = 1e-5;       // |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)
  double atol = 1e-7;
  double kink_tol = 1e-3;   // relative disagreement of one-sided differences that marks a kink
  double max_skipped = 0.2; // fail if more than this fraction of elements sat on kinks
};

struct GradcheckReport {
  bool ok = true;
  std::string message;   // the first failures, with input index, element, both values
  int64_t checked = 0;
  int64_t skipped = 0;
  double max_abs_error = 0;
};

using TensorFn = std::function<Tensor(const TensorList&)>;

GradcheckReport gradcheck(const TensorFn& f, const TensorList& inputs, const GradcheckOptions& options = {});

// A float64 leaf of the given shape, uniform in [low, high), requiring grad.
Tensor random_input(const Shape& shape, Generator& gen, double low = -1, double high = 1);

// `got` equals `want` within tol * max(1, |want|) element by element (NaN never does). One
// CHECK, naming the worst element, instead of one per element.
void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12);
// The same for tensors of one shape (any dtype, compared as float64).
void check_close(const Tensor& got, const Tensor& want, double tol = 1e-12);

// Gradient check of a net: its tops `tops` (flattened and concatenated) as a function of the fed
// tensors named in `wrt` (those that require grad are checked) and of every learnable parameter.
void check_net_grad(Net& net, const std::map<std::string, Tensor>& feed, const std::vector<std::string>& wrt,
                    const std::vector<std::string>& tops);

// The thread count of OpenMP and of OpenBLAS, as in a process started with OMP_NUM_THREADS set
// to it (0: back to the default). The kernels must give the same bits whatever it is.
void set_threads(int threads);
// Runs f with 1, 2 and 3 threads and checks that every tensor it returns has the same bits each
// time (`names` labels the outputs in a failure); returns the outputs of the 1-thread run.
TensorList check_same_bits_for_thread_counts(const std::function<TensorList()>& f, const std::string& names);

// The gradient run of a table: gradcheck of every case marked kGrad, in float64 on the CPU
// (one CHECK per case, naming the family, op and case on failure). Returns how many ran.
int check_gradient_cases(const OpTable& table);

}  // namespace mmfuse::testing

#define MMF_CONCAT_INNER(a, b) a##b
#define MMF_CONCAT(a, b) MMF_CONCAT_INNER(a, b)

// CHECK_GRAD(f, inputs[, options]) runs gradcheck and reports its message on failure.
#define CHECK_GRAD(...)                                                  \
  do {                                                                   \
    auto mmf_report_ = ::mmfuse::testing::gradcheck(__VA_ARGS__);        \
    INFO(mmf_report_.message);                                           \
    CHECK(mmf_report_.ok);                                               \
  } while (0)
