#include "core/ops/norm.h"

#include <cmath>
#include <vector>

#include "core/cpu/norm.h"
#include "core/ops/common.h"
#include "cuda/norm.h"

namespace mmfuse {

namespace {

std::string optional_shape(const Tensor& t) { return t.defined() ? shape_str(t.shape()) : "undefined"; }

// "x [4, 3], weight [6], bias undefined, running_mean [6], running_var [6]" for error messages.
std::string batch_norm_args(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                            const Tensor& running_var) {
  return "x " + shape_str(x.shape()) + ", weight " + optional_shape(weight) + ", bias " + optional_shape(bias) +
         ", running_mean " + optional_shape(running_mean) + ", running_var " + optional_shape(running_var);
}

// SyncBN's statistics: this process's per-group mean and biased variance (from count values
// each) become those of all processes' values, combined as Chan et al.'s parallel variance —
// the mean first, then each process's spread about it — so that no sum of squares of large
// values is differenced. Returns the count of all; `share` = count / that.
int64_t sync_batch_stats(const std::function<void(double*, size_t)>& sum_over_processes,
                         const cpu::BatchNormGeometry& geo, double* mean, double* var, double& share) {
  const int64_t groups = geo.groups();
  const double n = static_cast<double>(geo.count());
  std::vector<double> sums(static_cast<size_t>(groups) + 1);
  for (int64_t g = 0; g < groups; ++g) sums[g] = n * mean[g];
  sums[groups] = n;
  sum_over_processes(sums.data(), sums.size());
  const double total = sums[groups];
  std::vector<double> spread(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) {
    const double global_mean = sums[g] / total;
    spread[g] = n * (var[g] + (mean[g] - global_mean) * (mean[g] - global_mean));
    mean[g] = global_mean;
  }
  sum_over_processes(spread.data(), spread.size());
  for (int64_t g = 0; g < groups; ++g) var[g] = spread[g] / total;
  share = n / total;
  return static_cast<int64_t>(total);
}

// Calls f on the `count` doubles at p, which live on `device`: in place on the CPU, on a host
// copy written back afterwards for CUDA. SyncBN's sums are a few doubles per channel and the
// all-reduce (MPI) is a host call, so a CUDA SyncBN pays one round trip per reduction.
template <typename F>
void on_host(Device device, double* p, int64_t count, F&& f) {
  if (device.is_cpu()) return f(p);
  std::vector<double> host(static_cast<size_t>(count));
  copy_elements(p, DType::f64, device, host.data(), DType::f64, Device::cpu(), count);
  f(host.data());
  copy_elements(host.data(), DType::f64, Device::cpu(), p, DType::f64, device, count);
}

}  // namespace

Shape batch_norm_param_shape(const Shape& x, int64_t modalities) {
  const char* op = "batch_norm";
  MMF_CHECK(x.size() >= 2, OpError, op, ": x must be [M*N, C, ...] with rank >= 2, got ", shape_str(x));
  MMF_CHECK(modalities >= 1, OpError, op, ": modalities must be >= 1, got ", modalities);
  MMF_CHECK(x[0] % modalities == 0, OpError, op, ": batch ", x[0], " of ", shape_str(x),
            " is not divisible by modalities ", modalities);
  return modalities == 1 ? Shape{x[1]} : Shape{modalities, x[1]};
}

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormOptions& options) {
  const char* op = "batch_norm";
  ops::check_floating(op, x);
  const std::string args = batch_norm_args(x, weight, bias, running_mean, running_var);
  const int64_t modalities = options.modalities;
  batch_norm_param_shape(x.shape(), modalities);
  cpu::BatchNormGeometry geo;
  geo.modalities = modalities;
  geo.batch_per_modality = x.size(0) / modalities;
  geo.channels = x.size(1);
  geo.spatial = shape_numel(Shape(x.shape().begin() + 2, x.shape().end()));
  const int64_t groups = geo.groups();
  const Shape flat{groups}, per_modality{modalities, geo.channels};
  auto check_param = [&](const Tensor& p, const char* what) {
    if (!p.defined()) return;
    ops::check_compatible(op, x, p);
    MMF_CHECK(p.shape() == flat || p.shape() == per_modality, OpError, op, ": ", what, " must have M*C = ",
              modalities, "*", geo.channels, " = ", groups, " values (shape ", shape_str(per_modality), " or ",
              shape_str(flat), "); got ", args);
  };
  check_param(weight, "weight");
  check_param(bias, "bias");
  check_param(running_mean, "running_mean");
  check_param(running_var, "running_var");
  MMF_CHECK(running_mean.defined() == running_var.defined(), OpError, op,
            ": running_mean and running_var must both be given or both be undefined; got ", args);
  MMF_CHECK(!options.training || geo.count() != 1, OpError, op,
            ": expected more than 1 value per (modality, channel) when training; got ", args, " with modalities ",
            modalities);
  const bool batch_stats = options.training || !running_mean.defined();
  const bool sync = batch_stats && options.sum_over_processes != nullptr;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  // Per-group mean, variance and 1/sqrt(var + eps) in double on x's device; mean and invstd
  // are saved for backward.
  Tensor save_mean = Tensor::empty({groups}, DType::f64, x.device());
  Tensor var = Tensor::empty({groups}, DType::f64, x.device());
  Tensor save_invstd = Tensor::empty({groups}, DType::f64, x.device());
  double* mean = save_mean.data<double>();
  double* invstd = save_invstd.data<double>();
  double count_share = 1;  // this process's values per group over all processes' (sync)
  ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
    int64_t count = geo.count();
    if (batch_stats) {
      MMF_KERNEL(x, batch_norm_stats, x.data<T>(), geo, mean, var.data<double>());
      if (sync)
        on_host(x.device(), mean, groups, [&](double* m) {
          on_host(x.device(), var.data<double>(), groups, [&](double* v) {
            count = sync_batch_stats(options.sum_over_processes, geo, m, v, count_share);
          });
        });
    }
    const int64_t update_count = batch_stats && options.training && running_mean.defined() ? count : 0;
    MMF_KERNEL(x, batch_norm_prepare, running_mean.defined() ? running_mean.data<T>() : nullptr,
               running_var.defined() ? running_var.data<T>() : nullptr, groups, batch_stats, update_count,
               options.momentum, options.eps, mean, var.data<double>(), invstd);
    MMF_KERNEL(x, batch_norm_apply, x.data<T>(), geo, mean, invstd, weight.defined() ? weight.data<T>() : nullptr,
               bias.defined() ? bias.data<T>() : nullptr, y.data<T>());
  });

  const bool gx = x.requires_grad();
  const bool gw = weight.defined() && weight.requires_grad();
  const bool gb = bias.defined() && bias.requires_grad();
  autograd::record(op, {x, weight, bias}, {y},
                   [x = x.detach(), weight = weight.defined() ? weight.detach() : Tensor(),
                    bias_shape = bias.defined() ? bias.shape() : Shape(), save_mean, save_invstd, geo,
                    batch_stats, gx, gw, gb, sync, count_share,
                    sum_over_processes = options.sum_over_processes](const TensorList& g) -> TensorList {
                     const Tensor& dy = g[0];
                     ops::check_compatible("batch_norm", x, dy);
                     const int64_t groups = geo.groups();
                     // sum(dy) and sum(dy * (x - mean)) per group, on x's device.
                     Tensor sums = Tensor::empty({2, groups}, DType::f64, x.device());
                     double* sum_dy = sums.data<double>();
                     double* sum_dy_xmu = sum_dy + groups;
                     const double* mean = save_mean.data<double>();
                     const double* invstd = save_invstd.data<double>();
                     Tensor dx = gx ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
                     Tensor dw = gw ? Tensor::empty(weight.shape(), x.dtype(), x.device()) : Tensor();
                     Tensor db = gb ? Tensor::empty(bias_shape, x.dtype(), x.device()) : Tensor();
                     ops::dispatch_floating("batch_norm", x.dtype(), [&]<typename T>() {
                       if (gw || gb || (gx && batch_stats))
                         MMF_KERNEL(x, batch_norm_backward_reduce, dy.data<T>(), x.data<T>(), geo, mean, sum_dy,
                                    sum_dy_xmu);
                       MMF_KERNEL(x, batch_norm_param_grads, sum_dy, sum_dy_xmu, invstd, groups,
                                  gw ? dw.data<T>() : nullptr, gb ? db.data<T>() : nullptr);
                       if (!gx) return;
                       // SyncBN: the statistics' share of dx comes from every process's
                       // gradients, scaled so that the kernel's division by this process's
                       // count divides by the count of all; weight and bias kept their own
                       // sums above (the solver averages parameter gradients).
                       if (sync)
                         on_host(x.device(), sum_dy, 2 * groups, [&](double* both) {
                           sum_over_processes(both, static_cast<size_t>(2 * groups));
                           for (int64_t i = 0; i < 2 * groups; ++i) both[i] *= count_share;
                         });
                       MMF_KERNEL(x, batch_norm_backward_input, dy.data<T>(), x.data<T>(), geo, mean, invstd,
                                  weight.defined() ? weight.data<T>() : nullptr, sum_dy, sum_dy_xmu, batch_stats,
                                  dx.data<T>());
                     });
                     return {dx, dw, db};
                   });
  return y;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  const char* op = "dropout";
  ops::check_floating(op, x);
  MMF_CHECK(p >= 0 && p <= 1, OpError, op, ": probability p must be in [0, 1], got ", p, " for x ",
            shape_str(x.shape()));
  if (!training || p == 0) return x.clone();
  const int64_t n = x.numel();
  const uint64_t seed = gen.seed(), offset = gen.take(static_cast<uint64_t>(n));
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  // cpu::dropout_apply or its CUDA twin: the same Philox mask for the same seed and offset.
  ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
    MMF_KERNEL(x, dropout_apply, x.data<T>(), y.data<T>(), n, p, seed, offset);
  });
  // The same mask applies to the gradient: recomputed from (seed, offset), nothing stored.
  autograd::record(op, {x}, {y}, [p, seed, offset](const TensorList& g) -> TensorList {
    const Tensor& dy = g[0];
    Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
    ops::dispatch_floating("dropout", dy.dtype(), [&]<typename T>() {
      MMF_KERNEL(dy, dropout_apply, dy.data<T>(), dx.data<T>(), dy.numel(), p, seed, offset);
    });
    return {dx};
  });
  return y;
}

}  // namespace mmfuse
