// oneDNN's convolutions (core/cpu/dnnl.h) against our own kernels (core/cpu/conv.h): every
// direction on a table of geometries in both oneDNN layouts, the ops with autograd in both
// modes, the primitive cache, run-to-run bits, the switch and what falls back. Skipped, saying
// so, in a build without oneDNN.
#include <cmath>
#include <cstdlib>

#include "core/cpu/conv.h"
#include "core/cpu/dnnl.h"
#include "tests/gradcheck.h"

using namespace mmfuse;
using cpu::ConvDirection;
using cpu::ConvGeometry;
using cpu::DnnlLayout;

namespace {

bool skip_without_dnnl() {
  if (cpu::dnnl_built()) return false;
  MESSAGE("skipped: this build has no oneDNN (install libdnnl-dev, scripts/install-deps, and configure with "
          "-DMMFUSE_DNNL=ON)");
  return true;
}

struct GeometryCase {
  const char* name;
  ConvGeometry g;
};

// conv2d's terms: image [batch, channels, height, width], output [batch, out_channels, out_h, out_w].
ConvGeometry conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t kh, int64_t kw, int64_t stride_h = 1,
                  int64_t stride_w = 1, int64_t pad_h = 0, int64_t pad_w = 0, int64_t dil_h = 1, int64_t dil_w = 1,
                  int64_t groups = 1) {
  ConvGeometry g;
  g.batch = n, g.channels = c, g.height = h, g.width = w, g.out_channels = o;
  g.kernel_h = kh, g.kernel_w = kw, g.stride_h = stride_h, g.stride_w = stride_w, g.pad_h = pad_h, g.pad_w = pad_w;
  g.dilation_h = dil_h, g.dilation_w = dil_w, g.groups = groups;
  g.out_height = (h + 2 * pad_h - dil_h * (kh - 1) - 1) / stride_h + 1;
  g.out_width = (w + 2 * pad_w - dil_w * (kw - 1) - 1) / stride_w + 1;
  return g;
}

// conv_transpose2d's geometry (core/ops/conv.cpp): its input [n, c_in, h, w] is the output of
// conv2d's terms, its output (with output padding) the image.
ConvGeometry transposed(int64_t n, int64_t c_in, int64_t h, int64_t w, int64_t c_out, int64_t k, int64_t stride,
                        int64_t pad, int64_t dilation, int64_t output_padding) {
  ConvGeometry g;
  g.batch = n, g.out_channels = c_in, g.out_height = h, g.out_width = w, g.channels = c_out;
  g.kernel_h = g.kernel_w = k, g.stride_h = g.stride_w = stride, g.pad_h = g.pad_w = pad;
  g.dilation_h = g.dilation_w = dilation;
  g.height = (h - 1) * stride - 2 * pad + dilation * (k - 1) + output_padding + 1;
  g.width = g.height - h + w;
  return g;
}

std::vector<GeometryCase> geometry_cases() {
  return {
      {"3x3 padding 1", conv(2, 16, 9, 11, 24, 3, 3, 1, 1, 1, 1)},
      {"3x3 stride 2 padding 1", conv(3, 8, 13, 10, 16, 3, 3, 2, 2, 1, 1)},
      {"3x3 stride 2, floor drops a row", conv(2, 8, 8, 9, 8, 3, 3, 2, 2, 0, 0)},
      {"dilation 2", conv(2, 8, 11, 9, 8, 3, 3, 1, 1, 2, 2, 2, 2)},
      {"groups 2", conv(2, 8, 7, 9, 12, 3, 3, 1, 1, 1, 1, 1, 1, 2)},
      {"depthwise", conv(2, 8, 7, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8)},
      {"1x1 on 8x8 (plain under the rule)", conv(3, 32, 8, 8, 48, 1, 1)},
      {"1x1 on 2x2", conv(4, 64, 2, 2, 96, 1, 1)},
      {"1x1 stride 2", conv(2, 16, 9, 9, 32, 1, 1, 2, 2)},
      {"RGB 7x7 stride 2 (the stem)", conv(2, 3, 33, 31, 16, 7, 7, 2, 2, 3, 3)},
      {"batch of one, odd sizes", conv(1, 5, 7, 5, 3, 2, 3)},
      {"everything", conv(3, 4, 7, 5, 2, 2, 3, 2, 1, 2, 1, 1, 2, 2)},
      {"transposed, stride 2, output padding 1", transposed(2, 16, 5, 6, 8, 3, 2, 1, 1, 1)},
      {"transposed, output padding by the dilation", transposed(2, 8, 5, 5, 4, 3, 1, 1, 2, 1)},
  };
}

Shape image_shape(const ConvGeometry& g) { return {g.batch, g.channels, g.height, g.width}; }
Shape out_shape(const ConvGeometry& g) { return {g.batch, g.out_channels, g.out_height, g.out_width}; }
Shape weight_shape(const ConvGeometry& g) { return {g.out_channels, g.group_channels(), g.kernel_h, g.kernel_w}; }

// The product of one direction: our kernel, or oneDNN's (which must have taken it).
Tensor product(ConvDirection d, const ConvGeometry& g, const Tensor& image, const Tensor& weight, const Tensor& out,
               bool dnnl) {
  Tensor result = Tensor::full(d == ConvDirection::forward ? out_shape(g)
                               : d == ConvDirection::backward_data ? image_shape(g)
                                                                   : weight_shape(g),
                               std::nanf(""));
  const float* a = d == ConvDirection::backward_data ? out.data<float>() : image.data<float>();
  const float* b = d == ConvDirection::backward_weight ? out.data<float>() : weight.data<float>();
  float* r = result.data<float>();
  if (dnnl) {
    REQUIRE(cpu::dnnl_conv(d, g, a, b, r));
  } else if (d == ConvDirection::forward) {
    cpu::conv_forward<float>(g, a, b, r);
  } else if (d == ConvDirection::backward_data) {
    cpu::conv_backward_data<float>(g, a, b, r);
  } else {
    cpu::conv_backward_weight<float>(g, a, b, r);
  }
  return result;
}

// max |got - want| <= tol * max |want|: float32 sums in another order, nothing more.
void check_float_close(const Tensor& got, const Tensor& want, double tol = 2e-6) {
  auto a = got.to_vector<double>(), b = want.to_vector<double>();
  REQUIRE(a.size() == b.size());
  double scale = 0, err = 0;
  size_t worst = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    scale = std::max(scale, std::abs(b[i]));
    double e = std::abs(a[i] - b[i]);
    if (!(e <= err)) err = e, worst = i;  // NaN counts as the worst
  }
  CHECK_MESSAGE(err <= tol * scale, "element " << worst << ": " << a[worst] << " vs " << b[worst] << " (max |want| "
                                               << scale << ")");
}

const char* direction_name(ConvDirection d) {
  return d == ConvDirection::forward ? "forward" : d == ConvDirection::backward_data ? "backward data" : "backward weight";
}

struct LayoutScope {
  explicit LayoutScope(DnnlLayout layout) : was(cpu::dnnl_layout()) { cpu::set_dnnl_layout(layout); }
  ~LayoutScope() { cpu::set_dnnl_layout(was); }
  DnnlLayout was;
};

}  // namespace

TEST_CASE("oneDNN's convolutions match our kernels in every direction and layout") {
  if (skip_without_dnnl()) return;
  cpu::DnnlScope on(true);
  Generator gen(51);
  for (const GeometryCase& c : geometry_cases()) {
    const ConvGeometry& g = c.g;
    Tensor image = Tensor::randn(image_shape(g), gen), weight = Tensor::randn(weight_shape(g), gen);
    Tensor out = Tensor::randn(out_shape(g), gen);
    for (ConvDirection d : {ConvDirection::forward, ConvDirection::backward_data, ConvDirection::backward_weight}) {
      Tensor ours;
      {
        cpu::DnnlScope off(false);
        ours = product(d, g, image, weight, out, false);
      }
      for (DnnlLayout layout : {DnnlLayout::plain, DnnlLayout::blocked, DnnlLayout::automatic}) {
        INFO(c.name << ", " << direction_name(d) << ", layout "
                    << (layout == DnnlLayout::plain ? "plain" : layout == DnnlLayout::blocked ? "blocked" : "automatic")
                    << " (" << cpu::dnnl_conv_impl(d, g) << ")");
        LayoutScope scope(layout);
        // The automatic rule leaves the data gradient of an image of under 8 channels to ours.
        if (layout == DnnlLayout::automatic && d == ConvDirection::backward_data && g.group_channels() < 8) {
          Tensor untouched = Tensor::zeros(image_shape(g));
          CHECK(!cpu::dnnl_conv(d, g, out.data<float>(), weight.data<float>(), untouched.data<float>()));
          CHECK(cpu::dnnl_conv_impl(d, g).empty());
          continue;
        }
        check_float_close(product(d, g, image, weight, out, true), ours);
      }
    }
  }
}

TEST_CASE("conv2d and conv_transpose2d give the same values and gradients with oneDNN and without") {
  if (skip_without_dnnl()) return;
  Generator gen(52);
  struct OpCase {
    const char* name;
    Shape x, w;
    Conv2dOptions options;
  };
  for (const OpCase& c : {OpCase{"3x3 padding 1, bias", {3, 8, 9, 7}, {12, 8, 3, 3}, {.pad_h = 1, .pad_w = 1}},
                          OpCase{"stride 2 groups 2 dilation 2", {2, 6, 11, 10}, {8, 3, 3, 3},
                                 {.stride_h = 2, .stride_w = 2, .pad_h = 2, .pad_w = 1, .dilation_h = 2,
                                  .dilation_w = 2, .groups = 2}},
                          OpCase{"1x1", {2, 16, 6, 6}, {24, 16, 1, 1}, {}}}) {
    INFO(c.name);
    Tensor x = Tensor::randn(c.x, gen), w = Tensor::randn(c.w, gen), b = Tensor::randn({c.w[0]}, gen);
    ConvTranspose2dOptions t{c.options.stride_h, c.options.stride_w, c.options.pad_h,      c.options.pad_w,
                             c.options.dilation_h, c.options.dilation_w, c.options.groups, 0, 0};
    auto run = [&](bool dnnl) {
      cpu::DnnlScope scope(dnnl);
      Tensor xg = x.detach().set_requires_grad(), wg = w.detach().set_requires_grad(), bg = b.detach().set_requires_grad();
      Tensor y = conv2d(xg, wg, bg, c.options);
      y.backward(tanh(y.detach()));
      Tensor yg = y.detach().set_requires_grad(), wt = w.detach().set_requires_grad();
      Tensor z = conv_transpose2d(yg, wt, Tensor(), t);
      z.backward(tanh(z.detach()));
      return TensorList{y, xg.grad(), wg.grad(), bg.grad(), z, yg.grad(), wt.grad()};
    };
    TensorList ours = run(false), dnnl = run(true);
    const char* names[] = {"y", "dx", "dw", "db", "transposed z", "its dx", "its dw"};
    for (size_t i = 0; i < ours.size(); ++i) {
      INFO(names[i]);
      check_float_close(dnnl[i], ours[i], 1e-5);
    }
  }
}

TEST_CASE("oneDNN's primitive cache: one entry per geometry, direction and thread count, reused") {
  if (skip_without_dnnl()) return;
  cpu::DnnlScope on(true);
  LayoutScope layout(DnnlLayout::automatic);
  cpu::dnnl_clear_cache();
  Generator gen(53);
  ConvGeometry g = conv(2, 8, 10, 10, 16, 3, 3, 1, 1, 1, 1);
  Tensor image = Tensor::randn(image_shape(g), gen), weight = Tensor::randn(weight_shape(g), gen);
  Tensor out = Tensor::randn(out_shape(g), gen);
  testing::set_threads(2);
  product(ConvDirection::forward, g, image, weight, out, true);
  cpu::DnnlCacheStats s = cpu::dnnl_cache_stats();
  CHECK(s.entries == 1);
  CHECK(s.misses == 1);
  CHECK(s.hits == 0);
  for (int i = 0; i < 3; ++i) product(ConvDirection::forward, g, image, weight, out, true);
  s = cpu::dnnl_cache_stats();
  CHECK(s.entries == 1);
  CHECK(s.hits == 3);
  // Each direction is its own primitive; another size (batch) another key.
  product(ConvDirection::backward_weight, g, image, weight, out, true);
  ConvGeometry g3 = g;
  g3.batch = 3;
  Tensor image3 = Tensor::randn(image_shape(g3), gen), out3 = Tensor::randn(out_shape(g3), gen);
  product(ConvDirection::forward, g3, image3, weight, out3, true);
  s = cpu::dnnl_cache_stats();
  CHECK(s.entries == 3);
  CHECK(s.misses == 3);
  // oneDNN's OpenMP primitives are built for a thread count: another count, another entry.
  testing::set_threads(1);
  product(ConvDirection::forward, g, image, weight, out, true);
  testing::set_threads(0);
  s = cpu::dnnl_cache_stats();
  CHECK(s.entries == 4);
  CHECK(s.hits == 3);
  cpu::dnnl_clear_cache();
  s = cpu::dnnl_cache_stats();
  CHECK(s.entries + s.hits + s.misses == 0);
}

TEST_CASE("oneDNN: the same bits run to run for a given thread count") {
  if (skip_without_dnnl()) return;
  cpu::DnnlScope on(true);
  Generator gen(54);
  Tensor x = Tensor::randn({4, 16, 19, 17}, gen), w = Tensor::randn({24, 8, 3, 3}, gen);
  Conv2dOptions options{.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .groups = 2};
  auto run = [&] {
    Tensor xg = x.detach().set_requires_grad(), wg = w.detach().set_requires_grad();
    Tensor y = conv2d(xg, wg, Tensor(), options);
    y.backward(tanh(y.detach()));
    return TensorList{y, xg.grad(), wg.grad()};
  };
  for (int threads : {1, 2, 3}) {
    INFO(threads << " thread(s)");
    testing::set_threads(threads);
    cpu::dnnl_clear_cache();  // a fresh primitive the first time, the cached one the second
    TensorList first = run(), second = run();
    for (size_t i = 0; i < first.size(); ++i) CHECK(first[i].to_vector<float>() == second[i].to_vector<float>());
  }
  testing::set_threads(0);
}

TEST_CASE("oneDNN: the switch, the environment and what falls back to our kernels") {
  if (skip_without_dnnl()) return;
  Generator gen(55);
  ConvGeometry g = conv(2, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1);
  Tensor image = Tensor::randn(image_shape(g), gen), weight = Tensor::randn(weight_shape(g), gen);
  Tensor out = Tensor::empty(out_shape(g));
  {
    cpu::DnnlScope off(false);
    CHECK(!cpu::dnnl_enabled());
    CHECK(!cpu::dnnl_conv(ConvDirection::forward, g, image.data<float>(), weight.data<float>(), out.data<float>()));
    CHECK(cpu::dnnl_conv_impl(ConvDirection::forward, g).empty());
  }
  bool was = cpu::dnnl_enabled();
  const char* saved = std::getenv("MMFUSE_DNNL");
  std::string saved_value = saved ? saved : "";
  ::setenv("MMFUSE_DNNL", "0", 1);
  cpu::dnnl_read_environment();
  CHECK(!cpu::dnnl_enabled());
  ::setenv("MMFUSE_DNNL", "1", 1);
  cpu::dnnl_read_environment();
  CHECK(cpu::dnnl_enabled());
  if (saved) ::setenv("MMFUSE_DNNL", saved_value.c_str(), 1);
  else ::unsetenv("MMFUSE_DNNL");
  cpu::dnnl_read_environment();
  cpu::set_dnnl_enabled(was);

  cpu::DnnlScope on(true);
  CHECK(cpu::dnnl_summary().find("oneDNN") == 0);
  // A transposed convolution whose output padding (1, by the dilation) is more than oneDNN's
  // padding can express (pad 0): oneDNN is not asked, our kernels run it.
  ConvGeometry t = transposed(1, 4, 5, 5, 4, 3, 1, 0, 2, 1);
  Tensor grad_out = Tensor::randn(out_shape(t), gen), w = Tensor::randn(weight_shape(t), gen);
  Tensor image_t = Tensor::full(image_shape(t), 7.0f);
  CHECK(!cpu::dnnl_conv(ConvDirection::backward_data, t, grad_out.data<float>(), w.data<float>(),
                        image_t.data<float>()));
  CHECK(image_t.to_vector<float>() == Tensor::full(image_shape(t), 7.0f).to_vector<float>());  // untouched
  // float64 never goes to oneDNN: the op still runs (on our kernels) and agrees with float32.
  Tensor x64 = Tensor::randn({1, 4, 5, 5}, gen, 0, 1, DType::f64);
  Tensor w64 = Tensor::randn({4, 4, 3, 3}, gen, 0, 1, DType::f64);
  ConvTranspose2dOptions o{.dilation_h = 2, .dilation_w = 2, .output_padding_h = 1, .output_padding_w = 1};
  check_float_close(conv_transpose2d(x64.to(DType::f32), w64.to(DType::f32), Tensor(), o),
                    conv_transpose2d(x64, w64, Tensor(), o), 1e-5);
}

// ---- max pooling ------------------------------------------------------------------------------

namespace {

// max_pool2d's output and input gradient through autograd, with oneDNN on or off.
struct PoolRun {
  std::vector<float> y, dx;
};
PoolRun run_max_pool(const Tensor& x, const Tensor& dy, const Pool2dOptions& o, bool dnnl) {
  cpu::DnnlScope scope(dnnl);
  Tensor xg = x.detach().set_requires_grad();
  Tensor y = max_pool2d(xg, o);
  y.backward(dy);
  return {y.to_vector<float>(), xg.grad().to_vector<float>()};
}

// Values on a coarse grid (many ties inside a window) or continuous.
Tensor pool_input(const Shape& shape, bool ties, Generator& gen) {
  Tensor x = Tensor::randn(shape, gen);
  if (!ties) return x;
  std::vector<float> v = x.to_vector<float>();
  for (float& e : v) e = std::round(e * 2.0f);
  return Tensor::from_vector<float>(v, shape);
}

}  // namespace

TEST_CASE("oneDNN's max pooling: our outputs and tie routes, gradients to rounding, on the zoo's geometries") {
  if (skip_without_dnnl()) return;
  struct Case {
    const char* name;
    Shape shape;
    Pool2dOptions o;
  };
  const std::vector<Case> cases = {
      {"RefineNet CRP 5x5/1 pad 2", {2, 16, 16, 16}, Pool2dOptions::square(5, 1, 2)},
      {"CRP on a 2x2 map", {2, 8, 2, 2}, Pool2dOptions::square(5, 1, 2)},
      {"ResNet stem 3x3/2 pad 1", {2, 8, 32, 32}, Pool2dOptions::square(3, 2, 1)},
      {"LeNet 2x2/2", {4, 20, 24, 24}, Pool2dOptions::square(2, 2)},
      {"Caffe's ceil mode 3x3/2 on 13x13", {2, 4, 13, 13}, Pool2dOptions::square(3, 2, 0, true)},
      {"ceil mode with pad 3x3/2 pad 1 on 10x9", {1, 3, 10, 9}, Pool2dOptions::square(3, 2, 1, true)},
      {"rectangular 3x2 / (2, 1)", {2, 5, 11, 7}, {3, 2, 2, 1, 1, 0, false}},
  };
  Generator gen(97);
  for (const Case& c : cases)
    for (bool ties : {false, true}) {
      const std::string name = c.name;
      CAPTURE(name);
      CAPTURE(ties);
      Tensor x = pool_input(c.shape, ties, gen);
      cpu::DnnlCacheStats before = cpu::dnnl_cache_stats();
      Tensor probe = max_pool2d(x, c.o);
      Tensor dy = Tensor::randn(probe.shape(), gen);
      PoolRun ours = run_max_pool(x, dy, c.o, false), dnnl = run_max_pool(x, dy, c.o, true);
      // oneDNN ran it (a forward and a backward plan asked for), not our kernels.
      cpu::DnnlCacheStats after = cpu::dnnl_cache_stats();
      CHECK(after.hits + after.misses >= before.hits + before.misses + 2);
      CHECK(dnnl.y == ours.y);
      // dx: an input's gradients from overlapping windows (up to 25 float32 terms) added in
      // another order.
      testing::check_close(std::vector<double>(dnnl.dx.begin(), dnnl.dx.end()), std::vector<double>(ours.dx.begin(), ours.dx.end()), 1e-5);
      // With dy = 1 every input's gradient counts the windows it won: whole numbers, so ties
      // routed to another input than ours (the first maximum in window order) would show.
      Tensor ones = Tensor::ones(probe.shape());
      CHECK(run_max_pool(x, ones, c.o, true).dx == run_max_pool(x, ones, c.o, false).dx);
    }
}

TEST_CASE("oneDNN's max pooling: the same bits for 1, 2 and 3 threads") {
  if (skip_without_dnnl()) return;
  Generator gen(11);
  const Pool2dOptions o = Pool2dOptions::square(5, 1, 2);
  Tensor x = Tensor::randn({4, 24, 16, 16}, gen), dy = Tensor::randn({4, 24, 16, 16}, gen);
  std::vector<PoolRun> runs;
  for (int threads : {1, 2, 3}) {
    testing::set_threads(threads);
    runs.push_back(run_max_pool(x, dy, o, true));
  }
  testing::set_threads(0);
  for (size_t i = 1; i < runs.size(); ++i) {
    CHECK(runs[i].y == runs[0].y);
    CHECK(runs[i].dx == runs[0].dx);
  }
}

TEST_CASE("oneDNN's max pooling leaves inputs with a NaN, float64 and our parallel regions to our kernels") {
  if (skip_without_dnnl()) return;
  Generator gen(5);
  const Pool2dOptions o = Pool2dOptions::square(3, 1, 1);
  Tensor x = Tensor::randn({1, 2, 6, 6}, gen);
  std::vector<float> v = x.to_vector<float>();
  v[7] = std::nanf("");
  Tensor with_nan = Tensor::from_vector<float>(v, x.shape());
  Tensor dy = Tensor::randn({1, 2, 6, 6}, gen);
  PoolRun ours = run_max_pool(with_nan, dy, o, false), dnnl = run_max_pool(with_nan, dy, o, true);
  // PyTorch's rule, our kernels': a NaN in the window is the maximum (and takes the gradient).
  size_t nans = 0;
  for (size_t i = 0; i < ours.y.size(); ++i) {
    nans += std::isnan(ours.y[i]);
    CHECK((std::isnan(dnnl.y[i]) == std::isnan(ours.y[i])));
  }
  CHECK(nans == 9);  // the 3x3 outputs whose windows hold element 7 (row 1, column 1)
  CHECK(dnnl.dx == ours.dx);
  // float64 never goes to oneDNN.
  cpu::DnnlScope on(true);
  cpu::DnnlCacheStats before = cpu::dnnl_cache_stats();
  (void)max_pool2d(Tensor::randn({1, 2, 6, 6}, gen, 0, 1, DType::f64), o);
  CHECK(cpu::dnnl_cache_stats().hits + cpu::dnnl_cache_stats().misses == before.hits + before.misses);
}
