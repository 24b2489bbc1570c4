#include "core/cpu/dnnl.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "base/error.h"
#include "core/cpu/parallel.h"

#ifdef MMFUSE_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace mmfuse::cpu {

namespace {

// -1 until the environment has been read.
std::atomic<int> enabled_state{-1};
std::atomic<int> layout_state{-1};

// A value a variable does not take is named on stderr (once per read) and the default kept.
void unknown_value(const char* variable, std::string_view value, const char* meaning) {
  std::fprintf(stderr, "mmfuse: %s=%.*s is not understood (%s); using the default\n", variable,
               static_cast<int>(value.size()), value.data(), meaning);
}

bool env_enabled() {
  const char* v = std::getenv("MMFUSE_DNNL");
  if (!v || !*v) return true;
  std::string_view value(v);
  if (value == "0" || value == "off" || value == "false") return false;
  if (value != "1" && value != "on" && value != "true")
    unknown_value("MMFUSE_DNNL", value, "0 runs mmfuse's own CPU kernels, 1 oneDNN's");
  return true;
}

DnnlLayout env_layout() {
  const char* v = std::getenv("MMFUSE_DNNL_LAYOUT");
  if (!v || !*v) return DnnlLayout::automatic;
  std::string_view value(v);
  if (value == "plain") return DnnlLayout::plain;
  if (value == "blocked") return DnnlLayout::blocked;
  if (value != "automatic") unknown_value("MMFUSE_DNNL_LAYOUT", value, "plain, blocked or automatic");
  return DnnlLayout::automatic;
}

}  // namespace

bool dnnl_built() {
#ifdef MMFUSE_WITH_DNNL
  return true;
#else
  return false;
#endif
}

bool dnnl_enabled() {
  if (!dnnl_built()) return false;
  int state = enabled_state.load(std::memory_order_relaxed);
  if (state < 0) {
    state = env_enabled() ? 1 : 0;
    enabled_state.store(state, std::memory_order_relaxed);
  }
  return state == 1;
}

void set_dnnl_enabled(bool on) { enabled_state.store(on ? 1 : 0, std::memory_order_relaxed); }

DnnlLayout dnnl_layout() {
  int state = layout_state.load(std::memory_order_relaxed);
  if (state < 0) {
    state = static_cast<int>(env_layout());
    layout_state.store(state, std::memory_order_relaxed);
  }
  return static_cast<DnnlLayout>(state);
}

void dnnl_read_environment() {
  enabled_state.store(env_enabled() ? 1 : 0, std::memory_order_relaxed);
  layout_state.store(static_cast<int>(env_layout()), std::memory_order_relaxed);
}

void set_dnnl_layout(DnnlLayout layout) { layout_state.store(static_cast<int>(layout), std::memory_order_relaxed); }

#ifdef MMFUSE_WITH_DNNL

namespace {

using dnnl::memory;
using tag = memory::format_tag;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// Whether a product runs in oneDNN's own layouts under DnnlLayout::automatic. Measured with
// `bench_conv_cpu --zoo` (the main job's 32 geometries, 1 and 2 threads, AVX-512 EPYC): the
// blocked layouts with their reorders take 0.31-0.32x our kernels' time over the whole net, the
// plain ones 0.74-0.86x; plain is faster only for 1x1 kernels of stride 1 (jit_1x1 reads NCHW
// directly, and the reorders cost as much as the product): by 20-45% forward and backward data
// on maps of 4x4 and more (2x2: blocked, 3x faster), backward weight on 8x8 maps only. And
// LeNet's conv2 (20 -> 50 channels, 5x5): blocks of 16 pad 20 input channels to 32, and plain
// takes 0.62x our time forward against 0.73x, 0.64x against 0.77x for the weight gradient
// (0.91x against 0.85x for the data gradient); under 8 input channels (an RGB or grey image)
// oneDNN reads NCHW inside its blocked kernels anyway, and they win (the main job's stem: 0.26x
// against 1.07x forward).
bool blocked_by_rule(ConvDirection direction, const ConvGeometry& g) {
  int64_t channels = g.group_channels();
  if (channels >= 8 && channels % 16 != 0) return false;
  bool pointwise = g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
                   g.pad_w == 0;
  if (!pointwise) return true;
  int64_t area = g.out_area();
  if (direction == ConvDirection::backward_weight) return !(area > 16 && area <= 64);
  return area < 16;
}

// The cache key: the kind of primitive (a ConvDirection, or a pooling kind below), then
// everything it depends on. oneDNN's OpenMP primitives are built for the thread count of their
// creation, so it is part of the key.
using Key = std::array<int64_t, 19>;
enum PoolKind : int64_t { pool_forward = 3, pool_backward = 4 };

Key key_of(ConvDirection direction, const ConvGeometry& g, bool blocked, int threads) {
  return {static_cast<int64_t>(direction), blocked, threads, g.batch, g.channels, g.height, g.width,
          g.out_channels, g.out_height, g.out_width, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w,
          g.pad_h, g.pad_w, g.dilation_h, g.dilation_w, g.groups};
}

Key key_of(PoolKind kind, const Pool2dGeometry& g, int threads) {
  return {kind, 0, threads, g.planes, g.in_h, g.in_w, g.out_h, g.out_w, g.kernel_h, g.kernel_w, g.stride_h,
          g.stride_w, g.pad_h, g.pad_w, 0, 0, 0, 0, 0};
}

// One argument of a primitive: our plain layout, the primitive's, and the reorder
// between them where they differ (into the primitive for inputs, out of it for the output).
struct Operand {
  int arg = 0;
  memory::desc plain, inner;
  std::optional<dnnl::reorder> reorder;
};

// A cached primitive: itself, its operands (the inputs, then the output: a convolution's two
// and one, a pooling's one and one), the size of its scratchpad and of its workspace (max
// pooling's record of the maxima, written by the forward, read by the backward). `primitive` is
// empty where oneDNN cannot do the geometry (cached as well, so that it is asked once).
struct Plan {
  std::optional<dnnl::primitive> primitive;
  std::vector<Operand> operands;
  memory::desc scratchpad, workspace;
  std::string impl;
};

struct Cache {
  struct Entry {
    std::shared_ptr<const Plan> plan;
    uint64_t last_use = 0;
  };
  std::mutex mutex;
  std::map<Key, Entry> plans;
  uint64_t clock = 0;
  int64_t hits = 0, misses = 0;
};

Cache& cache() {
  static Cache c;
  return c;
}

// Scratch memory of one thread for the blocked operands and the scratchpad, grown on demand and
// kept (a few MB for the zoo's nets).
struct Workspace {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> data;
  size_t size = 0;

  char* get(size_t bytes) {
    if (bytes > size) {
      data.reset();
      size = (bytes + 4095) / 4096 * 4096;
      data.reset(std::aligned_alloc(4096, size));
      if (!data) throw std::bad_alloc();
    }
    return static_cast<char*>(data.get());
  }
};

size_t aligned_size(const memory::desc& md) { return (md.get_size() + 63) / 64 * 64; }

memory::dims image_dims(const ConvGeometry& g) { return {g.batch, g.channels, g.height, g.width}; }
memory::dims out_dims(const ConvGeometry& g) { return {g.batch, g.out_channels, g.out_height, g.out_width}; }
memory::dims weight_dims(const ConvGeometry& g) {
  if (g.groups == 1) return {g.out_channels, g.channels, g.kernel_h, g.kernel_w};
  return {g.groups, g.group_out_channels(), g.group_channels(), g.kernel_h, g.kernel_w};
}
tag weight_tag(const ConvGeometry& g) { return g.groups == 1 ? tag::oihw : tag::goihw; }

// The right padding oneDNN wants: its output size formula, (H + pad_l + pad_r - span) / stride
// + 1, must give ours exactly. Our conv2d's output sizes make pad_r = pad_l fit; a transposed
// convolution with an output padding of a stride or more needs less (nullopt: less than 0).
std::optional<int64_t> right_pad(int64_t size, int64_t out, int64_t kernel, int64_t stride, int64_t pad,
                                 int64_t dilation) {
  int64_t span = dilation * (kernel - 1) + 1;
  if ((size + 2 * pad - span) / stride + 1 == out) return pad;
  int64_t r = (out - 1) * stride + span - size - pad;
  if (r < 0) return std::nullopt;
  return r;
}

std::shared_ptr<const Plan> make_plan(ConvDirection direction, const ConvGeometry& g, bool blocked) {
  auto plan = std::make_shared<Plan>();
  auto pad_h = right_pad(g.height, g.out_height, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h);
  auto pad_w = right_pad(g.width, g.out_width, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w);
  if (!pad_h || !pad_w) return plan;
  memory::dims strides{g.stride_h, g.stride_w}, dilates{g.dilation_h - 1, g.dilation_w - 1};
  memory::dims pad_l{g.pad_h, g.pad_w}, pad_r{*pad_h, *pad_w};
  auto f32 = memory::data_type::f32;
  memory::desc image_plain(image_dims(g), f32, tag::nchw), out_plain(out_dims(g), f32, tag::nchw);
  memory::desc weight_plain(weight_dims(g), f32, weight_tag(g));
  memory::desc image_md = image_plain, out_md = out_plain, weight_md = weight_plain;
  if (blocked) {
    image_md = memory::desc(image_dims(g), f32, tag::any);
    out_md = memory::desc(out_dims(g), f32, tag::any);
    weight_md = memory::desc(weight_dims(g), f32, tag::any);
  }
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto algo = dnnl::algorithm::convolution_direct;
  dnnl::engine& eng = engine();
  // The backward primitives take the forward's descriptor as a hint.
  dnnl::convolution_forward::primitive_desc forward(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, image_md, weight_md, out_md, strides,
                                      dilates, pad_l, pad_r),
      attr, eng, /*allow_empty=*/true);
  if (!forward) return plan;
  // (argument, our layout, the primitive's) for inputs a, b and the output.
  std::array<std::pair<int, memory::desc>, 3> args;
  std::array<memory::desc, 3> inner;
  switch (direction) {
    case ConvDirection::forward:
      args = {{{DNNL_ARG_SRC, image_plain}, {DNNL_ARG_WEIGHTS, weight_plain}, {DNNL_ARG_DST, out_plain}}};
      inner = {forward.src_desc(), forward.weights_desc(), forward.dst_desc()};
      plan->primitive = dnnl::convolution_forward(forward);
      plan->scratchpad = forward.scratchpad_desc();
      plan->impl = forward.impl_info_str();
      break;
    case ConvDirection::backward_data: {
      dnnl::convolution_backward_data::primitive_desc pd(
          dnnl::convolution_backward_data::desc(algo, image_md, weight_md, out_md, strides, dilates, pad_l, pad_r),
          attr, eng, forward, /*allow_empty=*/true);
      if (!pd) return plan;
      args = {{{DNNL_ARG_DIFF_DST, out_plain}, {DNNL_ARG_WEIGHTS, weight_plain}, {DNNL_ARG_DIFF_SRC, image_plain}}};
      inner = {pd.diff_dst_desc(), pd.weights_desc(), pd.diff_src_desc()};
      plan->primitive = dnnl::convolution_backward_data(pd);
      plan->scratchpad = pd.scratchpad_desc();
      plan->impl = pd.impl_info_str();
      break;
    }
    case ConvDirection::backward_weight: {
      dnnl::convolution_backward_weights::primitive_desc pd(
          dnnl::convolution_backward_weights::desc(algo, image_md, weight_md, out_md, strides, dilates, pad_l, pad_r),
          attr, eng, forward, /*allow_empty=*/true);
      if (!pd) return plan;
      args = {{{DNNL_ARG_SRC, image_plain}, {DNNL_ARG_DIFF_DST, out_plain}, {DNNL_ARG_DIFF_WEIGHTS, weight_plain}}};
      inner = {pd.src_desc(), pd.diff_dst_desc(), pd.diff_weights_desc()};
      plan->primitive = dnnl::convolution_backward_weights(pd);
      plan->scratchpad = pd.scratchpad_desc();
      plan->impl = pd.impl_info_str();
      break;
    }
  }
  plan->operands.resize(3);
  for (size_t i = 0; i < 3; ++i) {
    Operand& op = plan->operands[i];
    op.arg = args[i].first;
    op.plain = args[i].second;
    op.inner = inner[i];
    if (op.inner != op.plain) {
      bool output = i == 2;
      op.reorder = dnnl::reorder(dnnl::reorder::primitive_desc(eng, output ? op.inner : op.plain, eng,
                                                               output ? op.plain : op.inner));
    }
  }
  return plan;
}

// The cached plan of `key`, made by make() on a miss.
template <typename Make>
std::shared_ptr<const Plan> cached_plan(const Key& key, Make make) {
  Cache& c = cache();
  {
    std::lock_guard lock(c.mutex);
    auto it = c.plans.find(key);
    if (it != c.plans.end()) {
      ++c.hits;
      it->second.last_use = ++c.clock;
      return it->second.plan;
    }
  }
  // Created outside the lock (it takes a while); two threads missing at once both create one
  // and the second insert is dropped.
  std::shared_ptr<const Plan> plan;
  try {
    plan = make();
  } catch (const dnnl::error&) {
    plan = std::make_shared<const Plan>();  // oneDNN refused the geometry: our kernels run it
  }
  std::lock_guard lock(c.mutex);
  ++c.misses;
  auto [it, inserted] = c.plans.emplace(key, Cache::Entry{plan});
  it->second.last_use = ++c.clock;
  plan = it->second.plan;
  if (inserted && static_cast<int64_t>(c.plans.size()) > kDnnlCacheCapacity) {
    auto oldest = std::min_element(c.plans.begin(), c.plans.end(),
                                   [](const auto& a, const auto& b) { return a.second.last_use < b.second.last_use; });
    c.plans.erase(oldest);
  }
  return plan;
}

std::shared_ptr<const Plan> plan_for(ConvDirection direction, const ConvGeometry& g, bool blocked) {
  return cached_plan(key_of(direction, g, blocked, max_threads()), [&] { return make_plan(direction, g, blocked); });
}

// Max pooling, forward for training or backward, on our NCHW planes as they are (one image of
// `planes` channels: oneDNN's plain-layout kernels vectorise over the channels). Its
// descriptor's output size must be ours: right_pad as for a convolution.
std::shared_ptr<const Plan> make_pool_plan(PoolKind kind, const Pool2dGeometry& g) {
  auto plan = std::make_shared<Plan>();
  auto pad_h = right_pad(g.in_h, g.out_h, g.kernel_h, g.stride_h, g.pad_h, 1);
  auto pad_w = right_pad(g.in_w, g.out_w, g.kernel_w, g.stride_w, g.pad_w, 1);
  if (!pad_h || !pad_w) return plan;
  const auto f32 = memory::data_type::f32;
  memory::desc image({1, g.planes, g.in_h, g.in_w}, f32, tag::nchw), out({1, g.planes, g.out_h, g.out_w}, f32, tag::nchw);
  memory::dims strides{g.stride_h, g.stride_w}, kernel{g.kernel_h, g.kernel_w}, pad_l{g.pad_h, g.pad_w},
      pad_r{*pad_h, *pad_w};
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::engine& eng = engine();
  dnnl::pooling_forward::primitive_desc forward(
      dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max, image, out, strides,
                                  kernel, pad_l, pad_r),
      attr, eng, /*allow_empty=*/true);
  if (!forward) return plan;
  plan->workspace = forward.workspace_desc();
  if (kind == pool_forward) {
    plan->primitive = dnnl::pooling_forward(forward);
    plan->operands = {{DNNL_ARG_SRC, image, image, std::nullopt}, {DNNL_ARG_DST, out, out, std::nullopt}};
    plan->scratchpad = forward.scratchpad_desc();
    plan->impl = forward.impl_info_str();
    return plan;
  }
  dnnl::pooling_backward::primitive_desc backward(
      dnnl::pooling_backward::desc(dnnl::algorithm::pooling_max, image, out, strides, kernel, pad_l, pad_r), attr,
      eng, forward, /*allow_empty=*/true);
  if (!backward) return plan;
  plan->primitive = dnnl::pooling_backward(backward);
  plan->operands = {{DNNL_ARG_DIFF_DST, out, out, std::nullopt}, {DNNL_ARG_DIFF_SRC, image, image, std::nullopt}};
  plan->scratchpad = backward.scratchpad_desc();
  plan->impl = backward.impl_info_str();
  return plan;
}

std::shared_ptr<const Plan> pool_plan_for(PoolKind kind, const Pool2dGeometry& g) {
  return cached_plan(key_of(kind, g, max_threads()), [&] { return make_pool_plan(kind, g); });
}

// Runs a plan on our pointers, one per operand (inputs, then the output), and max pooling's
// workspace where it has one.
void run(const Plan& plan, std::initializer_list<const void*> pointers, const void* pool_workspace = nullptr) {
  dnnl::engine& eng = engine();
  thread_local dnnl::stream stream(eng);
  thread_local Workspace workspace;
  size_t bytes = aligned_size(plan.scratchpad);
  for (const Operand& op : plan.operands)
    if (op.reorder) bytes += aligned_size(op.inner);
  char* space = workspace.get(bytes);
  std::unordered_map<int, memory> args;
  if (plan.scratchpad.get_size() > 0) {
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(plan.scratchpad, eng, space));
    space += aligned_size(plan.scratchpad);
  }
  if (plan.workspace.get_size() > 0)
    args.emplace(DNNL_ARG_WORKSPACE, memory(plan.workspace, eng, const_cast<void*>(pool_workspace)));
  std::optional<memory> output_plain, output_inner;
  const size_t last = plan.operands.size() - 1;
  for (size_t i = 0; i < plan.operands.size(); ++i) {
    const Operand& op = plan.operands[i];
    memory user(op.plain, eng, const_cast<void*>(pointers.begin()[i]));
    if (!op.reorder) {
      args.emplace(op.arg, user);
      continue;
    }
    memory inner(op.inner, eng, space);
    space += aligned_size(op.inner);
    if (i < last) op.reorder->execute(stream, user, inner);
    else output_plain = user, output_inner = inner;
    args.emplace(op.arg, inner);
  }
  plan.primitive->execute(stream, args);
  if (output_inner) plan.operands[last].reorder->execute(stream, *output_inner, *output_plain);
  stream.wait();
}

// Whether x holds a NaN (one pass the compiler vectorises; no early exit).
bool has_nan(const float* x, int64_t n) {
  int nan = 0;
  for (int64_t i = 0; i < n; ++i) nan |= x[i] != x[i];
  return nan != 0;
}

bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

// Under DnnlLayout::automatic, the products our kernels do faster: the data gradient of an image
// of under 8 channels (input gradients of an RGB or grey image, for adversarial examples), where
// oneDNN took 1.06x (plain) and 1.24x (blocked) our time for the main job's stem and 1.16x and
// 7.3x for LeNet's conv1 (1 thread).
bool leave_to_ours(ConvDirection direction, const ConvGeometry& g) {
  return dnnl_layout() == DnnlLayout::automatic && direction == ConvDirection::backward_data &&
         g.group_channels() < 8;
}

bool use_blocked(ConvDirection direction, const ConvGeometry& g) {
  switch (dnnl_layout()) {
    case DnnlLayout::plain: return false;
    case DnnlLayout::blocked: return true;
    case DnnlLayout::automatic: break;
  }
  return blocked_by_rule(direction, g);
}

}  // namespace

bool dnnl_conv(ConvDirection direction, const ConvGeometry& g, const float* a, const float* b, float* out) {
  // Inside a parallel region of ours oneDNN would run on one thread a primitive partitioned for
  // several (its OpenMP runtime does not nest): our kernels take such calls.
  if (!dnnl_enabled() || in_parallel_region()) return false;
  if (leave_to_ours(direction, g)) return false;
  std::shared_ptr<const Plan> plan = plan_for(direction, g, use_blocked(direction, g));
  if (!plan->primitive) return false;
  run(*plan, {a, b, out});
  return true;
}

bool dnnl_max_pool_forward(const Pool2dGeometry& g, const float* x, float* y,
                           const std::function<void*(size_t bytes)>& workspace) {
  if (!dnnl_enabled() || in_parallel_region()) return false;
  std::shared_ptr<const Plan> plan = pool_plan_for(pool_forward, g);
  if (!plan->primitive || has_nan(x, g.planes * g.in_h * g.in_w)) return false;
  run(*plan, {x, y}, workspace(std::max<size_t>(plan->workspace.get_size(), 1)));
  return true;
}

void dnnl_max_pool_backward(const Pool2dGeometry& g, const float* dy, const void* workspace, float* dx) {
  std::shared_ptr<const Plan> plan = pool_plan_for(pool_backward, g);
  MMF_CHECK(plan->primitive, Error, "max_pool2d: oneDNN ran the forward of this geometry but not its backward");
  run(*plan, {dy, dx}, workspace);
}

DnnlCacheStats dnnl_cache_stats() {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  return {static_cast<int64_t>(c.plans.size()), c.hits, c.misses};
}

void dnnl_clear_cache() {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  c.plans.clear();
  c.hits = c.misses = 0;
}

std::string dnnl_summary() {
  const dnnl::version_t* v = dnnl::version();
  std::string isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: isa = "sse41"; break;
    case dnnl::cpu_isa::avx: isa = "avx"; break;
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    default: isa = "other"; break;
  }
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
         " (" + (v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime") + "), ISA " + isa + ", " +
         (dnnl_enabled() ? "on" : "off (MMFUSE_DNNL=0)");
}

std::string dnnl_conv_impl(ConvDirection direction, const ConvGeometry& g) {
  if (!dnnl_enabled()) return "";
  if (leave_to_ours(direction, g)) return "";
  return plan_for(direction, g, use_blocked(direction, g))->impl;
}

#else  // without oneDNN

bool dnnl_conv(ConvDirection, const ConvGeometry&, const float*, const float*, float*) { return false; }
bool dnnl_max_pool_forward(const Pool2dGeometry&, const float*, float*, const std::function<void*(size_t)>&) {
  return false;
}
void dnnl_max_pool_backward(const Pool2dGeometry&, const float*, const void*, float*) {
  throw Error("max_pool2d: this build has no oneDNN to run the backward of its forward");
}
DnnlCacheStats dnnl_cache_stats() { return {}; }
void dnnl_clear_cache() {}
std::string dnnl_summary() { return "oneDNN not built"; }
std::string dnnl_conv_impl(ConvDirection, const ConvGeometry&) { return ""; }

#endif

}  // namespace mmfuse::cpu
