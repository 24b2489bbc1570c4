#include "tests/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#include "core/net.h"

namespace mmfuse::testing {

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  size_t worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double ratio = std::abs(got[i] - want[i]) / (tol * std::max(1.0, std::abs(want[i])));
    if (std::isnan(ratio)) ratio = HUGE_VAL;
    if (ratio > worst_ratio) worst = i, worst_ratio = ratio;
  }
  INFO("element " << worst << " of " << got.size() << ": " << (got.empty() ? 0 : got[worst]) << " vs "
                  << (want.empty() ? 0 : want[worst]) << " (tolerance " << tol << ")");
  CHECK(worst_ratio <= 1);
}

void check_close(const Tensor& got, const Tensor& want, double tol) {
  REQUIRE(got.shape() == want.shape());
  check_close(got.to_vector<double>(), want.to_vector<double>(), tol);
}

void set_threads(int threads) {
#ifdef _OPENMP
  static const int default_threads = omp_get_max_threads();
  int count = threads > 0 ? threads : default_threads;
  omp_set_num_threads(count);
  if (openblas_get_parallel() == 1) openblas_set_num_threads(count);  // the OpenMP build follows OpenMP's
#else
  (void)threads;
#endif
}

TensorList check_same_bits_for_thread_counts(const std::function<TensorList()>& f, const std::string& names) {
  auto run = [&](int threads) {
    set_threads(threads);
    TensorList out = f();
    set_threads(0);
    return out;
  };
  TensorList serial = run(1), two = run(2), three = run(3);
  REQUIRE(two.size() == serial.size());
  REQUIRE(three.size() == serial.size());
  for (size_t i = 0; i < serial.size(); ++i) {
    INFO("output " << i << " (" << names << ")");
    CHECK(two[i].to_vector<double>() == serial[i].to_vector<double>());
    CHECK(three[i].to_vector<double>() == serial[i].to_vector<double>());
  }
  return serial;
}

void check_net_grad(Net& net, const std::map<std::string, Tensor>& feed, const std::vector<std::string>& wrt,
                    const std::vector<std::string>& tops) {
  TensorList inputs;
  for (const auto& name : wrt) inputs.push_back(feed.at(name));
  for (const auto& p : net.learnable_params()) inputs.push_back(p.value);
  auto f = [&](const TensorList& in) {
    std::map<std::string, Tensor> fed = feed;
    for (size_t i = 0; i < wrt.size(); ++i) fed[wrt[i]] = in[i];
    auto blobs = net.forward(fed);
    TensorList flat;
    for (const auto& t : tops) flat.push_back(blobs.at(t).flatten(0));
    return flat.size() == 1 ? flat[0] : concat(flat, 0);
  };
  CHECK_GRAD(f, inputs);
}

int check_gradient_cases(const OpTable& table) {
  int ran = 0;
  for (const OpCase& c : table.cases) {
    if (!(c.runs & kGrad)) continue;
    INFO(table.family << " table, gradient case " << c.name());
    CHECK_GRAD(c.fn, make_inputs(c, DType::f64));
    ++ran;
  }
  return ran;
}

Tensor random_input(const Shape& shape, Generator& gen, double low, double high) {
  Tensor t = Tensor::rand(shape, gen, low, high, DType::f64);
  t.set_requires_grad(true);
  return t;
}

GradcheckReport gradcheck(const TensorFn& f, const TensorList& inputs, const GradcheckOptions& options) {
  GradcheckReport report;
  std::ostringstream msg;
  int failures = 0;

  // Analytic gradients.
  for (const Tensor& x : inputs)
    if (x.defined() && x.requires_grad()) x.set_grad(Tensor());
  Tensor out = f(inputs);
  Generator weights_gen(1234);
  Tensor weights = Tensor::rand(out.shape(), weights_gen, -1, 1, out.dtype());
  out.backward(weights);
  std::vector<double> w = weights.to_vector<double>();

  auto loss = [&]() {
    autograd::NoGradGuard no_grad;
    std::vector<double> y = f(inputs).to_vector<double>();
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += y[i] * w[i];
    return l;
  };
  double eps = options.eps;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    MMF_CHECK(x.dtype() == DType::f64 && x.device().is_cpu(), Error,
              "gradcheck: input ", k, " must be a float64 CPU tensor, got ", x.str());
    std::vector<double> analytic = x.grad().defined() ? x.grad().to_vector<double>()
                                                       : std::vector<double>(x.numel(), 0.0);
    double* p = x.data<double>();
    double l0 = loss();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double orig = p[i];
      p[i] = orig + eps;
      double lp = loss();
      p[i] = orig - eps;
      double lm = loss();
      p[i] = orig;
      double right = (lp - l0) / eps, left = (l0 - lm) / eps;
      if (std::abs(right - left) > options.kink_tol * std::max({1.0, std::abs(left), std::abs(right)})) {
        report.skipped++;
        continue;
      }
      double numeric = (lp - lm) / (2 * eps);
      double a = analytic[i];
      double err = std::abs(a - numeric);
      report.max_abs_error = std::max(report.max_abs_error, err);
      report.checked++;
      if (err > options.atol + options.rtol * std::max(std::abs(a), std::abs(numeric))) {
        report.ok = false;
        if (failures++ < 8)
          msg << "input " << k << " " << shape_str(x.shape()) << " element " << i << ": analytic " << a
              << ", numeric " << numeric << "\n";
      }
    }
  }
  int64_t total = report.checked + report.skipped;
  if (total > 0 && report.skipped > options.max_skipped * static_cast<double>(total)) {
    report.ok = false;
    msg << report.skipped << " of " << total << " elements sat on kinks\n";
  }
  if (report.checked == 0) {
    report.ok = false;
    msg << "no element was checked (no input requires grad?)\n";
  }
  msg << report.checked << " elements checked, " << report.skipped << " skipped at kinks, max |error| "
      << report.max_abs_error;
  report.message = msg.str();
  return report;
}

}  // namespace mmfuse::testing
