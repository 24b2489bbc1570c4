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

#ifdef MMFUSE_WITH_CUDA
// The CUDA branch of batch_norm (checks done): statistics, running update and the fused
// normalise + affine all on the device (cuda/norm.h); mean and invstd stay there for backward.
Tensor batch_norm_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                       const Tensor& running_var, const BatchNormOptions& options, const cpu::BatchNormGeometry& geo,
                       bool batch_stats) {
  const int64_t groups = geo.groups();
  const int device = x.device().index;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor save_mean = Tensor::empty({groups}, DType::f64, x.device());
  Tensor save_invstd = Tensor::empty({groups}, DType::f64, x.device());
  const bool update = options.training && running_mean.defined() && geo.count() > 0;
  ops::dispatch_floating("batch_norm", x.dtype(), [&]<typename T>() {
    cuda::batch_norm_forward<T>(x.data<T>(), geo, batch_stats, update,
                                running_mean.defined() ? running_mean.data<T>() : nullptr,
                                running_var.defined() ? running_var.data<T>() : nullptr, options.momentum, options.eps,
                                weight.defined() ? weight.data<T>() : nullptr, bias.defined() ? bias.data<T>() : nullptr,
                                y.data<T>(), save_mean.data<double>(), save_invstd.data<double>(), device);
  });
  const bool gx = x.requires_grad();
  const bool gw = weight.defined() && weight.requires_grad();
  const bool gb = bias.defined() && bias.requires_grad();
  autograd::record("batch_norm", {x, weight, bias}, {y},
                   [x = x.detach(), weight = weight.defined() ? weight.detach() : Tensor(),
                    bias_shape = bias.defined() ? bias.shape() : Shape(), save_mean, save_invstd, geo, batch_stats,
                    gx, gw, gb](const TensorList& g) -> TensorList {
    const Tensor& dy = g[0];
    ops::check_compatible("batch_norm", x, dy);
    Tensor dx = gx ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
    Tensor dw = gw ? Tensor::empty(weight.shape(), x.dtype(), x.device()) : Tensor();
    Tensor db = gb ? Tensor::empty(bias_shape, x.dtype(), x.device()) : Tensor();
    ops::dispatch_floating("batch_norm", x.dtype(), [&]<typename T>() {
      cuda::batch_norm_backward<T>(dy.data<T>(), x.data<T>(), geo, save_mean.data<double>(),
                                   save_invstd.data<double>(), weight.defined() ? weight.data<T>() : nullptr,
                                   batch_stats, gx ? dx.data<T>() : nullptr, gw ? dw.data<T>() : nullptr,
                                   gb ? db.data<T>() : nullptr, x.device().index);
    });
    return {dx, dw, db};
  });
  return y;
}
#endif

}  // namespace

namespace {

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

  if (x.is_cuda()) {
    MMF_CHECK(!sync, OpError, op, ": synchronised statistics (BatchNorm sync) are implemented for CPU tensors only; "
              "got ", args, " on ", x.device().str());
#ifdef MMFUSE_WITH_CUDA
    return batch_norm_cuda(x, weight, bias, running_mean, running_var, options, geo, batch_stats);
#else
    ops::no_cuda_kernel(op);
#endif
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  // Per-group mean and 1/sqrt(var + eps) in double, saved for backward.
  Tensor save_mean = Tensor::empty({groups}, DType::f64, x.device());
  Tensor save_invstd = Tensor::empty({groups}, DType::f64, x.device());
  double* mean = save_mean.data<double>();
  double* invstd = save_invstd.data<double>();
  std::vector<double> var(groups);
  double count_share = 1;  // this process's values per group over all processes' (sync)
  ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
    if (batch_stats) {
      cpu::batch_norm_stats<T>(x.data<T>(), geo, mean, var.data());
      int64_t count = geo.count();
      if (sync) count = sync_batch_stats(options.sum_over_processes, geo, mean, var.data(), count_share);
      if (options.training && running_mean.defined() && count > 0)
        cpu::batch_norm_update_running<T>(running_mean.data<T>(), running_var.data<T>(), mean, var.data(), groups,
                                          count, options.momentum);
    } else {
      const T* rm = running_mean.data<T>();
      const T* rv = running_var.data<T>();
      for (int64_t g = 0; g < groups; ++g) {
        mean[g] = rm[g];
        var[g] = rv[g];
      }
    }
    for (int64_t g = 0; g < groups; ++g) invstd[g] = 1.0 / std::sqrt(var[g] + options.eps);
    cpu::batch_norm_apply<T>(x.data<T>(), geo, mean, invstd, weight.defined() ? weight.data<T>() : nullptr,
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
                     const int64_t groups = geo.groups();
                     std::vector<double> sum_dy(groups), sum_dy_xmu(groups);
                     const double* mean = save_mean.data<double>();
                     const double* invstd = save_invstd.data<double>();
                     Tensor dx, dw, db;
                     ops::dispatch_floating("batch_norm", x.dtype(), [&]<typename T>() {
                       if (gw || gb || (gx && batch_stats))
                         cpu::batch_norm_backward_reduce<T>(dy.data<T>(), x.data<T>(), geo, mean, sum_dy.data(),
                                                            sum_dy_xmu.data());
                       if (gx) {
                         // SyncBN: the statistics' share of dx comes from every process's
                         // gradients, scaled so that the kernel's division by this process's
                         // count divides by the count of all; weight and bias keep their own
                         // sums (the solver averages parameter gradients).
                         std::vector<double> all_dy, all_dy_xmu;
                         const double *pdy = sum_dy.data(), *pdy_xmu = sum_dy_xmu.data();
                         if (sync) {
                           std::vector<double> both(sum_dy);
                           both.insert(both.end(), sum_dy_xmu.begin(), sum_dy_xmu.end());
                           sum_over_processes(both.data(), both.size());
                           for (double& v : both) v *= count_share;
                           all_dy.assign(both.begin(), both.begin() + groups);
                           all_dy_xmu.assign(both.begin() + groups, both.end());
                           pdy = all_dy.data(), pdy_xmu = all_dy_xmu.data();
                         }
                         dx = Tensor::empty(x.shape(), x.dtype(), x.device());
                         cpu::batch_norm_backward_input<T>(dy.data<T>(), x.data<T>(), geo, mean, invstd,
                                                           weight.defined() ? weight.data<T>() : nullptr,
                                                           pdy, pdy_xmu, batch_stats, dx.data<T>());
                       }
                       if (gw) {
                         dw = Tensor::empty(weight.shape(), x.dtype(), x.device());
                         T* p = dw.data<T>();
                         for (int64_t i = 0; i < groups; ++i) p[i] = static_cast<T>(sum_dy_xmu[i] * invstd[i]);
                       }
                       if (gb) {
                         db = Tensor::empty(bias_shape, x.dtype(), x.device());
                         T* p = db.data<T>();
                         for (int64_t i = 0; i < groups; ++i) p[i] = static_cast<T>(sum_dy[i]);
                       }
                     });
                     return {dx, dw, db};
                   });
  return y;
}

namespace {

// cpu::dropout_apply or its CUDA twin (the same Philox mask for the same seed and offset).
template <typename T>
void dropout_on_device(const Tensor& x, const Tensor& y, double p, uint64_t seed, uint64_t offset) {
  if (!x.is_cuda()) return cpu::dropout_apply<T>(x.data<T>(), y.data<T>(), x.numel(), p, seed, offset);
#ifdef MMFUSE_WITH_CUDA
  cuda::dropout_apply<T>(x.data<T>(), y.data<T>(), x.numel(), p, seed, offset, x.device().index);
#else
  ops::no_cuda_kernel("dropout");
#endif
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  const char* op = "dropout";
  ops::check_floating(op, x);
  MMF_CHECK(p >= 0 && p <= 1, OpError, op, ": probability p must be in [0, 1], got ", p, " for x ",
            shape_str(x.shape()));
  if (!training || p == 0) return x.clone();
  const int64_t n = x.numel();
  const uint64_t seed = gen.seed(), offset = gen.take(static_cast<uint64_t>(n));
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  ops::dispatch_floating(op, x.dtype(), [&]<typename T>() {
    dropout_on_device<T>(x, y, p, seed, offset);
  });
  // The same mask applies to the gradient: recomputed from (seed, offset), nothing stored.
  autograd::record(op, {x}, {y}, [p, seed, offset](const TensorList& g) -> TensorList {
    const Tensor& dy = g[0];
    Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
    ops::dispatch_floating("dropout", dy.dtype(), [&]<typename T>() {
      dropout_on_device<T>(dy, dx, p, seed, offset);
    });
    return {dx};
  });
  return y;
}

}  // namespace mmfuse
