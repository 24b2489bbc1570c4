#include "tests/cuda/cuda_parity.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#ifdef MMFUSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace mmfuse::testing {

bool cuda_available() {
#ifdef MMFUSE_WITH_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

double relative_error(const Tensor& a, const Tensor& b) {
  MMF_CHECK(a.shape() == b.shape(), Error, "relative_error: shapes ", shape_str(a.shape()), " and ",
            shape_str(b.shape()));
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    bool fa = std::isfinite(va[i]), fb = std::isfinite(vb[i]);
    if (!fa || !fb) {
      // Non-finite values must agree exactly (the same NaN or the same infinity).
      bool same = (std::isnan(va[i]) && std::isnan(vb[i])) || va[i] == vb[i];
      if (!same) return INFINITY;
      continue;
    }
    diff += (va[i] - vb[i]) * (va[i] - vb[i]);
    norm += vb[i] * vb[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

ParityReport check_parity(const TensorFn& f, const TensorList& inputs, double tolerance,
                          double grad_tolerance, uint64_t seed, const std::vector<bool>& differentiable) {
  MMF_CHECK(differentiable.empty() || differentiable.size() == inputs.size(), Error, "check_parity: ",
            differentiable.size(), " differentiable flags for ", inputs.size(), " inputs");
  if (grad_tolerance < 0) grad_tolerance = tolerance;
  ParityReport report;
  std::ostringstream msg;
  auto fail = [&](const std::string& what) {
    report.ok = false;
    msg << what << "\n";
  };
  Device gpu = Device::cuda(0);
  TensorList cpu_in, gpu_in;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    Tensor c = is_floating(t.dtype()) ? t.detach().to(DType::f32).detach() : t.detach();
    Tensor g = c.to(gpu).detach();
    if (is_floating(c.dtype()) && (differentiable.empty() || differentiable[i])) {
      c.set_requires_grad();
      g.set_requires_grad();
    }
    cpu_in.push_back(c);
    gpu_in.push_back(g);
  }
  Tensor out_cpu = f(cpu_in), out_gpu = f(gpu_in);
  if (!out_gpu.is_cuda()) fail("the CUDA run returned a tensor on " + out_gpu.device().str());
  if (out_cpu.shape() != out_gpu.shape() || out_cpu.dtype() != out_gpu.dtype()) {
    fail("outputs differ: cpu " + out_cpu.str() + ", cuda " + out_gpu.str());
    report.message = msg.str();
    return report;
  }
  report.forward_error = relative_error(out_gpu, out_cpu);
  if (!(report.forward_error <= tolerance)) {
    std::ostringstream m;
    m << "forward " << out_cpu.str() << ": relative error " << report.forward_error << " > tolerance " << tolerance;
    fail(m.str());
  }
  if (out_cpu.requires_grad() && is_floating(out_cpu.dtype())) {
    Generator gen(seed);
    Tensor r = Tensor::rand(out_cpu.shape(), gen, -1, 1, out_cpu.dtype());
    out_cpu.backward(r);
    out_gpu.backward(r.to(gpu));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    double err = 0;
    Tensor gc = cpu_in[i].requires_grad() ? cpu_in[i].grad() : Tensor();
    Tensor gg = gpu_in[i].requires_grad() ? gpu_in[i].grad() : Tensor();
    if (gc.defined() != gg.defined()) {
      fail("input " + std::to_string(i) + ": gradient defined on " + (gc.defined() ? "cpu" : "cuda") + " only");
    } else if (gc.defined()) {
      if (!gg.is_cuda()) fail("input " + std::to_string(i) + ": CUDA gradient on " + gg.device().str());
      err = relative_error(gg, gc);
      if (!(err <= grad_tolerance)) {
        std::ostringstream m;
        m << "gradient of input " << i << " " << gc.str() << ": relative error " << err << " > tolerance "
          << grad_tolerance;
        fail(m.str());
      }
    }
    report.grad_errors.push_back(err);
  }
  report.message = msg.str();
  return report;
}

int check_parity_cases(const OpTable& table, double min_tolerance) {
  int cases = 0;
  for (const OpCase& c : table.cases) cases += (c.runs & kParity) ? 1 : 0;
  if (!cuda_available()) {
    MESSAGE("no CUDA device visible: the " << cases << " parity cases of the " << table.family << " table skipped");
    return 0;
  }
  for (const OpCase& c : table.cases) {
    if (!(c.runs & kParity)) continue;
    INFO(table.family << " table, parity case " << c.name());
    double tol = std::max(c.tol, min_tolerance), grad_tol = std::max(c.grad_tol < 0 ? c.tol : c.grad_tol, min_tolerance);
    CHECK_PARITY(c.fn, make_inputs(c, DType::f32, false), tol, grad_tol, c.seed, grad_mask(c));
  }
  return cases;
}

}  // namespace mmfuse::testing
