#include "core/layer.h"

#include <unistd.h>

#include <cstdio>

#include "core/caffe_upgrade.h"
#include "core/evaluate.h"
#include "core/filler.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace mmfuse {

Layer::Layer(const proto::LayerParameter& param) : param_(param) {}

double device_memory_bytes(Device device) {
  if (device.is_cuda()) {
#ifdef MMFUSE_WITH_CUDA
    if (device.index < cuda::device_count()) return static_cast<double>(cuda::device_info(device.index).total_memory);
#endif
    return 0;
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  double bytes = pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0;
  // A container's limit (cgroup v2, then v1) when it is below the machine's memory.
  for (const char* limit_file : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    if (std::FILE* f = std::fopen(limit_file, "r")) {
      double limit = 0;
      if (std::fscanf(f, "%lf", &limit) == 1 && limit > 0 && (bytes <= 0 || limit < bytes)) bytes = limit;
      std::fclose(f);
    }
  }
  return bytes;
}

double tensor_bytes(const Shape& shape, DType dtype) {
  double n = static_cast<double>(dtype_size(dtype));
  for (int64_t d : shape) n *= static_cast<double>(d);
  return n;
}

std::string bytes_str(double bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) bytes /= 1024, ++u;
  char buf[48];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

std::string Layer::describe() const { return "layer '" + name() + "' (" + type() + ")"; }

std::vector<SegmentationScores> Layer::metric_scores(size_t, const std::vector<double>&, const Shape&) const {
  throw Error(describe() + ": holds no metric state to score");
}

namespace {
std::string count_range(int lo, int hi, const char* noun) {
  std::string n = std::string(noun) + ((hi == 1 && lo == 1) ? "" : "s");
  if (hi < 0) return "at least " + std::to_string(lo) + " " + n;
  if (lo == hi) return std::to_string(lo) + " " + n;
  return std::to_string(lo) + " to " + std::to_string(hi) + " " + n;
}
}  // namespace

void Layer::check_arity() const {
  Arity a = arity();
  int nb = param_.bottom_size(), nt = param_.top_size();
  if (nb < a.min_bottoms || (a.max_bottoms >= 0 && nb > a.max_bottoms))
    throw ParseError(describe() + " takes " + count_range(a.min_bottoms, a.max_bottoms, "bottom") + ", got " +
                     std::to_string(nb));
  if (nt < a.min_tops || (a.max_tops >= 0 && nt > a.max_tops))
    throw ParseError(describe() + " takes " + count_range(a.min_tops, a.max_tops, "top") + ", got " +
                     std::to_string(nt));
}

int64_t Layer::canonical_axis(int64_t axis, int64_t ndim, const char* what) const {
  int64_t a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim) fail(what, " ", axis, " out of range for a ", ndim, "-d bottom");
  return a;
}

const Tensor& Layer::add_param(LayerContext& ctx, const std::string& short_name, const Shape& shape,
                               const proto::FillerParameter& filler, int64_t fan_in, int64_t fan_out,
                               bool learnable) {
  size_t index = params_.size();
  Param p;
  p.name = name() + "." + short_name;
  if (static_cast<int>(index) < param_.param_size()) {
    p.lr_mult = param_.param(static_cast<int>(index)).lr_mult();
    p.decay_mult = param_.param(static_cast<int>(index)).decay_mult();
  }
  p.learnable = learnable;
  double bytes = tensor_bytes(shape, ctx.dtype), memory = device_memory_bytes(ctx.device);
  if (memory > 0 && bytes > memory)
    fail("parameter '", short_name, "' ", shape_str(shape), " needs ", bytes_str(bytes), ", more than the ",
         bytes_str(memory), " of memory of ", ctx.device.str());
  p.value = Tensor::empty(shape, ctx.dtype, ctx.device);
  try {
    fill(p.value, filler, ctx.gen, fan_in, fan_out);
  } catch (const OpError& e) {
    fail("parameter '", short_name, "': ", e.what());
  }
  if (learnable) p.value.set_requires_grad(true);
  params_.push_back(std::move(p));
  return params_.back().value;
}

std::map<std::string, LayerFactory>& layer_registry() {
  static std::map<std::string, LayerFactory> registry;
  return registry;
}

std::vector<std::string> layer_types() {
  std::vector<std::string> types;
  for (const auto& [name, factory] : layer_registry()) types.push_back(name);
  return types;
}

std::unique_ptr<Layer> create_layer(const proto::LayerParameter& param) {
  auto it = layer_registry().find(param.type());
  if (it == layer_registry().end()) throw ParseError(unsupported_layer_type(param.type()));
  return it->second(param);
}

}  // namespace mmfuse
