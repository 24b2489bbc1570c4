// oneDNN (Intel's Deep Neural Network Library, Debian's libdnnl-dev) for the CPU's float32
// convolutions and max pooling (docs/ops.md, "The CPU backend"). Optional at build time
// (-DMMFUSE_DNNL=OFF, or the library absent): then every entry below answers "not done" and our
// own kernels run.
// Nothing here names a oneDNN type, so the rest of the tree builds the same either way; only
// core/cpu/dnnl.cpp includes dnnl.hpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "base/geometry/conv.h"
#include "base/geometry/pool.h"

namespace mmfuse::cpu {

// Whether this build links oneDNN.
bool dnnl_built();
// Whether kernels go to oneDNN now: built, and not switched off. The switch starts from the
// environment (MMFUSE_DNNL=0 runs our own kernels everywhere; unset or 1: oneDNN) and
// set_dnnl_enabled changes it for the whole process (tests and benchmarks compare the two in
// one binary). Turning it on in a build without oneDNN changes nothing.
bool dnnl_enabled();
void set_dnnl_enabled(bool on);
// Sets the switch and the layout (below) again from MMFUSE_DNNL and MMFUSE_DNNL_LAYOUT.
void dnnl_read_environment();

// Sets the switch for a scope, and puts it back after.
class DnnlScope {
 public:
  explicit DnnlScope(bool on) : was_(dnnl_enabled()) { set_dnnl_enabled(on); }
  ~DnnlScope() { set_dnnl_enabled(was_); }
  DnnlScope(const DnnlScope&) = delete;
  DnnlScope& operator=(const DnnlScope&) = delete;

 private:
  bool was_;
};

// How oneDNN's convolutions see memory. `plain`: they read and write our NCHW / OIHW tensors
// directly. `blocked`: oneDNN picks its own layouts (format_tag::any; channels in blocks of 8 or
// 16 for its vector width) and every call reorders into and out of them. `automatic` (the
// default) picks per geometry, by the rule of dnnl.cpp measured on the zoo's shapes
// (bench/conv_cpu.cpp --zoo). Env MMFUSE_DNNL_LAYOUT=plain|blocked|automatic sets the start value.
enum class DnnlLayout { automatic, plain, blocked };
DnnlLayout dnnl_layout();
void set_dnnl_layout(DnnlLayout layout);

// The three products of a convolution, in conv2d's terms (core/cpu/conv.h).
enum class ConvDirection { forward, backward_data, backward_weight };

// Runs one product of core/cpu/conv.h through oneDNN, with the same arguments and result as
// its kernel there (forward: a = image, b = weight, out = output; backward_data: a = grad_out,
// b = weight, out = grad_image; backward_weight: a = image, b = grad_out, out = grad_weight;
// `out` overwritten). Returns false, having touched nothing, where oneDNN is off, cannot do
// the geometry, or is slower than ours there (dnnl.cpp's rule): the caller then runs its own
// kernel.
bool dnnl_conv(ConvDirection direction, const ConvGeometry& g, const float* a, const float* b, float* out);

// Max pooling of float32 planes (core/cpu/pool.h's geometry) through oneDNN, about 7x our
// kernels on the main job's pools (bench_pool_bn_cpu). The forward, for training, asks
// `workspace(bytes)` for the memory it fills in place of our argmax; the backward reads it and
// overwrites dx. The forward returns false, having asked for nothing and touched nothing, where
// oneDNN is off or cannot do the geometry, or the input holds a NaN (not PyTorch's maximum for
// oneDNN, as it is for ours): then our kernels run it, with their argmax. Same outputs and the
// same input for ties (the first maximum in window order) as ours; dx differs in rounding where
// windows overlap (oneDNN adds an input's gradients in another order).
bool dnnl_max_pool_forward(const Pool2dGeometry& g, const float* x, float* y,
                           const std::function<void*(size_t bytes)>& workspace);
// Runs whenever the forward did (whatever the switch says since): the workspace is oneDNN's.
void dnnl_max_pool_backward(const Pool2dGeometry& g, const float* dy, const void* workspace, float* dx);

// The primitive cache: one entry per (direction, geometry, layout, thread count), created on
// first use and kept (least recently used dropped past kDnnlCacheCapacity entries).
struct DnnlCacheStats {
  int64_t entries = 0, hits = 0, misses = 0;
};
inline constexpr int64_t kDnnlCacheCapacity = 1024;
DnnlCacheStats dnnl_cache_stats();
void dnnl_clear_cache();  // drops every entry and zeroes the counts

// "oneDNN 2.6.3 (OpenMP), ISA avx512_core, on" and the like; "not built" without it. The
// implementation oneDNN picked for a geometry: "jit:avx512_core", "gemm:jit", ...; "" where none.
std::string dnnl_summary();
std::string dnnl_conv_impl(ConvDirection direction, const ConvGeometry& g);

}  // namespace mmfuse::cpu
