// CPU pooling and batch norm: our kernels (core/cpu/pool.h, core/cpu/norm.h) against oneDNN's
// primitives, on the geometries of the main job's net and LeNet (issue 18; docs/ops.md, "The
// CPU backend", oneDNN).
//
//   bench_pool_bn_cpu [--runs K]
//
// Every pooling geometry of models/asymfusion/synthetic.prototxt (the stem's 3x3/2 max pool,
// the RefineNet CRP 5x5/1 max pools) and of LeNet (2x2/2), and every BatchNorm shape of the
// main job's net (as `mmfuse check` lists them), float32, plain NCHW for both sides:
//   pool: forward (max, with argmax / oneDNN training workspace) and forward + backward;
//   BN:   training forward (batch statistics, scale and shift) and forward + backward (dx, dgamma,
//         dbeta); ours keeps float64 statistics, oneDNN float32: the max relative difference of
//         y and dx is printed. "private" = per-modality statistics (2 modalities of 8 samples),
//         which oneDNN can only do as one call per modality slice.
// Medians of K runs (default 15) after a warm-up, ms per call, the ratio ours / oneDNN (> 1:
// oneDNN faster), and the sums weighted by how many layers share the shape. Set
// OMP_NUM_THREADS to compare thread counts (primitives are created once per shape, outside the
// timed region, as a cache would).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/host_timing.h"
#include "core/cpu/norm.h"
#include "core/cpu/pool.h"

#ifdef MMFUSE_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

using namespace mmfuse;

namespace {

int g_runs = 15;

#ifdef MMFUSE_WITH_DNNL
double median_ms(const std::function<void()>& f) { return bench::median_ms(f, g_runs); }

std::vector<float> random_values(size_t n, unsigned seed, bool ties) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.5f, 1.f);
  std::vector<float> v(n);
  // With ties: values on a coarse grid, so that windows hold equal maxima.
  for (auto& x : v) x = ties ? std::round(d(gen) * 2.f) / 2.f : d(gen);
  return v;
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double scale = 0, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(a[i])));
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

struct PoolCase {
  const char* where;
  int64_t n, c, h, w, k, s, p;
  int layers;
};

struct BnCase {
  int64_t n, c, h, w;
  int layers;
};

struct Totals {
  double ours_f = 0, ours_fb = 0, dnnl_f = 0, dnnl_fb = 0;
  void add(int layers, double of, double ofb, double df, double dfb) {
    ours_f += layers * of, ours_fb += layers * ofb, dnnl_f += layers * df, dnnl_fb += layers * dfb;
  }
  void print(const char* what) const {
    std::printf("%-34s fwd ours %7.3f dnnl %7.3f (x%.2f) | fwd+bwd ours %7.3f dnnl %7.3f (x%.2f)\n", what, ours_f,
                dnnl_f, ours_f / dnnl_f, ours_fb, dnnl_fb, ours_fb / dnnl_fb);
  }
};

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

void bench_pool(const PoolCase& pc, Totals& net) {
  cpu::Pool2dGeometry g{pc.n * pc.c, pc.h, pc.w, 0, 0, pc.k, pc.k, pc.s, pc.s, pc.p, pc.p};
  g.out_h = (pc.h + 2 * pc.p - pc.k) / pc.s + 1;
  g.out_w = (pc.w + 2 * pc.p - pc.k) / pc.s + 1;
  const size_t in_n = static_cast<size_t>(g.planes * g.in_h * g.in_w), out_n = static_cast<size_t>(g.planes * g.out_h * g.out_w);
  std::vector<float> x = random_values(in_n, 1, true), gy = random_values(out_n, 2, false);
  std::vector<float> y(out_n), gx(in_n), y2(out_n), gx2(in_n);
  std::vector<int64_t> argmax(out_n);

  auto ours_fwd = [&] { cpu::max_pool2d_forward(x.data(), y.data(), argmax.data(), g); };
  auto ours_fb = [&] {
    ours_fwd();
    std::memset(gx.data(), 0, in_n * sizeof(float));
    cpu::max_pool2d_backward(gy.data(), argmax.data(), gx.data(), g);
  };

  auto& eng = engine();
  dnnl::stream stream(eng);
  dnnl::memory::desc src_md({pc.n, pc.c, pc.h, pc.w}, dt::f32, tag::nchw);
  dnnl::memory::desc dst_md({pc.n, pc.c, g.out_h, g.out_w}, dt::f32, tag::nchw);
  dnnl::memory::dims strides{pc.s, pc.s}, kernel{pc.k, pc.k}, pad{pc.p, pc.p};
  dnnl::pooling_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max, src_md, dst_md,
                                 strides, kernel, pad, pad);
  dnnl::pooling_forward::primitive_desc fpd(fd, eng);
  dnnl::pooling_backward::desc bd(dnnl::algorithm::pooling_max, src_md, dst_md, strides, kernel, pad, pad);
  dnnl::pooling_backward::primitive_desc bpd(bd, eng, fpd);
  dnnl::pooling_forward fwd(fpd);
  dnnl::pooling_backward bwd(bpd);
  dnnl::memory src(src_md, eng, x.data()), dst(dst_md, eng, y2.data()), ws(fpd.workspace_desc(), eng);
  dnnl::memory ddst(dst_md, eng, gy.data()), dsrc(src_md, eng, gx2.data());
  auto dnnl_fwd = [&] {
    fwd.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_WORKSPACE, ws}});
    stream.wait();
  };
  auto dnnl_fb = [&] {
    fwd.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_WORKSPACE, ws}});
    bwd.execute(stream, {{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dsrc}, {DNNL_ARG_WORKSPACE, ws}});
    stream.wait();
  };
  double of = median_ms(ours_fwd), ofb = median_ms(ours_fb), df = median_ms(dnnl_fwd), dfb = median_ms(dnnl_fb);
  // Values must agree exactly. dx differs by rounding where windows overlap (the gradients
  // of one input are summed in another order); with dy = 1 every sum is an exact small integer,
  // so any difference there is a tie routed to another input than ours (the first maximum in
  // window order).
  bool same_y = y == y2;
  double gdiff = max_rel_diff(gx, gx2);
  std::vector<float> gy_saved = gy;
  std::fill(gy.begin(), gy.end(), 1.f);
  ours_fb();
  dnnl_fb();
  bool same_ties = gx == gx2;
  gy = gy_saved;
  char name[96];
  std::snprintf(name, sizeof name, "%s [%lld,%lld,%lld,%lld] %lldx%lld/%lld p%lld x%d", pc.where, (long long)pc.n,
                (long long)pc.c, (long long)pc.h, (long long)pc.w, (long long)pc.k, (long long)pc.k, (long long)pc.s,
                (long long)pc.p, pc.layers);
  std::printf("%-44s fwd %7.3f / %7.3f ms (x%.2f)  fwd+bwd %7.3f / %7.3f ms (x%.2f)  y %s, dx maxrel %.1e, ties %s\n",
              name, of, df, of / df, ofb, dfb, ofb / dfb, same_y ? "same" : "DIFFERENT", gdiff,
              same_ties ? "as ours" : "ROUTED DIFFERENTLY");
  net.add(pc.layers, of, ofb, df, dfb);
}

// One oneDNN BN forward + backward pair on [n, c, h, w] (one modality slice).
struct DnnlBn {
  dnnl::memory::desc md;
  dnnl::batch_normalization_forward::primitive_desc fpd;
  dnnl::batch_normalization_backward::primitive_desc bpd;
  dnnl::batch_normalization_forward fwd;
  dnnl::batch_normalization_backward bwd;
  static constexpr float eps = 1e-5f;
  DnnlBn(int64_t n, int64_t c, int64_t h, int64_t w)
      : md({n, c, h, w}, dt::f32, tag::nchw),
        fpd(dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_training, md, eps,
                                                    dnnl::normalization_flags::use_scale_shift),
            engine()),
        bpd(dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, md, md, eps,
                                                     dnnl::normalization_flags::use_scale_shift),
            engine(), fpd),
        fwd(fpd),
        bwd(bpd) {}
};

void bench_bn(const BnCase& bc, int64_t modalities, Totals& net) {
  const int64_t per = bc.n / modalities;
  cpu::BatchNormGeometry geo{modalities, per, bc.c, bc.h * bc.w};
  const int64_t groups = geo.groups();
  const size_t total = static_cast<size_t>(bc.n * bc.c * bc.h * bc.w);
  std::vector<float> x = random_values(total, 3, false), dy = random_values(total, 4, false);
  std::vector<float> y(total), dx(total), y2(total), dx2(total);
  std::vector<float> gamma(static_cast<size_t>(groups)), beta(gamma.size()), rm(gamma.size(), 0.f), rv(gamma.size(), 1.f);
  for (size_t i = 0; i < gamma.size(); ++i) gamma[i] = 1.f + 0.01f * static_cast<float>(i % 7), beta[i] = 0.1f * static_cast<float>(i % 5);
  std::vector<float> dw(gamma.size()), db(gamma.size());
  std::vector<double> mean(gamma.size()), var(gamma.size()), invstd(gamma.size()), sdy(gamma.size()), sdyx(gamma.size());

  auto ours_fwd = [&] {
    cpu::batch_norm_stats(x.data(), geo, mean.data(), var.data());
    cpu::batch_norm_prepare(rm.data(), rv.data(), groups, true, geo.count(), 0.1, DnnlBn::eps, mean.data(), var.data(),
                            invstd.data());
    cpu::batch_norm_apply(x.data(), geo, mean.data(), invstd.data(), gamma.data(), beta.data(), y.data());
  };
  auto ours_fb = [&] {
    ours_fwd();
    cpu::batch_norm_backward_reduce(dy.data(), x.data(), geo, mean.data(), sdy.data(), sdyx.data());
    cpu::batch_norm_param_grads(sdy.data(), sdyx.data(), invstd.data(), groups, dw.data(), db.data());
    cpu::batch_norm_backward_input(dy.data(), x.data(), geo, mean.data(), invstd.data(), gamma.data(), sdy.data(),
                                   sdyx.data(), true, dx.data());
  };

  auto& eng = engine();
  dnnl::stream stream(eng);
  DnnlBn p(per, bc.c, bc.h, bc.w);
  struct Slice {
    dnnl::memory src, dst, mean, var, ss, ddst, dsrc, dss;
  };
  std::vector<std::vector<float>> ss(static_cast<size_t>(modalities)), dss(ss.size());
  std::vector<Slice> slices;
  const size_t slice_n = total / static_cast<size_t>(modalities);
  for (int64_t m = 0; m < modalities; ++m) {
    auto& s = ss[static_cast<size_t>(m)];
    s.resize(static_cast<size_t>(2 * bc.c));
    for (int64_t c = 0; c < bc.c; ++c) s[static_cast<size_t>(c)] = gamma[static_cast<size_t>(m * bc.c + c)], s[static_cast<size_t>(bc.c + c)] = beta[static_cast<size_t>(m * bc.c + c)];
    dss[static_cast<size_t>(m)].resize(s.size());
    const size_t o = static_cast<size_t>(m) * slice_n;
    slices.push_back({dnnl::memory(p.md, eng, x.data() + o), dnnl::memory(p.md, eng, y2.data() + o),
                      dnnl::memory(p.fpd.mean_desc(), eng), dnnl::memory(p.fpd.variance_desc(), eng),
                      dnnl::memory(p.fpd.weights_desc(), eng, s.data()), dnnl::memory(p.md, eng, dy.data() + o),
                      dnnl::memory(p.md, eng, dx2.data() + o),
                      dnnl::memory(p.bpd.diff_weights_desc(), eng, dss[static_cast<size_t>(m)].data())});
  }
  auto run_fwd = [&](Slice& s) {
    p.fwd.execute(stream, {{DNNL_ARG_SRC, s.src}, {DNNL_ARG_DST, s.dst}, {DNNL_ARG_MEAN, s.mean},
                           {DNNL_ARG_VARIANCE, s.var}, {DNNL_ARG_SCALE_SHIFT, s.ss}});
  };
  auto dnnl_fwd = [&] {
    for (auto& s : slices) run_fwd(s);
    stream.wait();
  };
  auto dnnl_fb = [&] {
    for (auto& s : slices) {
      run_fwd(s);
      p.bwd.execute(stream, {{DNNL_ARG_SRC, s.src}, {DNNL_ARG_MEAN, s.mean}, {DNNL_ARG_VARIANCE, s.var},
                             {DNNL_ARG_DIFF_DST, s.ddst}, {DNNL_ARG_SCALE_SHIFT, s.ss}, {DNNL_ARG_DIFF_SRC, s.dsrc},
                             {DNNL_ARG_DIFF_SCALE_SHIFT, s.dss}});
    }
    stream.wait();
  };
  double of = median_ms(ours_fwd), ofb = median_ms(ours_fb), df = median_ms(dnnl_fwd), dfb = median_ms(dnnl_fb);
  char name[96];
  std::snprintf(name, sizeof name, "BN%s [%lld,%lld,%lld,%lld] x%d", modalities > 1 ? " private" : "", (long long)bc.n,
                (long long)bc.c, (long long)bc.h, (long long)bc.w, bc.layers);
  std::printf("%-44s fwd %7.3f / %7.3f ms (x%.2f)  fwd+bwd %7.3f / %7.3f ms (x%.2f)  maxrel y %.1e dx %.1e\n", name, of,
              df, of / df, ofb, dfb, ofb / dfb, max_rel_diff(y, y2), max_rel_diff(dx, dx2));
  net.add(bc.layers, of, ofb, df, dfb);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--runs" && i + 1 < argc) g_runs = std::max(1, std::atoi(argv[++i]));
#ifndef MMFUSE_WITH_DNNL
  std::printf("bench_pool_bn_cpu: built without oneDNN (libdnnl-dev), nothing to compare\n");
  return 0;
#else
  const char* threads = std::getenv("OMP_NUM_THREADS");
  std::printf("float32, plain NCHW, median of %d runs, OMP_NUM_THREADS=%s; columns: ours / oneDNN\n", g_runs,
              threads ? threads : "(unset)");
  // Shapes: `mmfuse check models/asymfusion/synthetic.prototxt` (inputs of each layer) and
  // models/lenet (batch 64).
  const PoolCase net_pools[] = {
      {"stem", 16, 16, 32, 32, 3, 2, 1, 1},  {"crp g1", 16, 64, 2, 2, 5, 1, 2, 4},
      {"crp g2", 16, 32, 4, 4, 5, 1, 2, 4},  {"crp g3", 16, 32, 8, 8, 5, 1, 2, 4},
      {"crp g4", 16, 32, 16, 16, 5, 1, 2, 4},
  };
  const PoolCase lenet_pools[] = {{"lenet pool1", 64, 20, 24, 24, 2, 2, 0, 1}, {"lenet pool2", 64, 50, 8, 8, 2, 2, 0, 1}};
  const BnCase bns[] = {
      {16, 16, 32, 32, 1}, {16, 16, 16, 16, 4}, {16, 64, 16, 16, 4}, {16, 32, 16, 16, 1}, {16, 32, 8, 8, 3},
      {16, 128, 8, 8, 4},  {16, 64, 8, 8, 1},   {16, 64, 4, 4, 3},   {16, 256, 4, 4, 4}, {16, 128, 4, 4, 1},
      {16, 128, 2, 2, 3},  {16, 512, 2, 2, 4},
  };
  Totals pool_net, pool_lenet, bn_net, bn_private;
  for (const auto& pc : net_pools) bench_pool(pc, pool_net);
  for (const auto& pc : lenet_pools) bench_pool(pc, pool_lenet);
  for (const auto& bc : bns) bench_bn(bc, 1, bn_net);
  for (const auto& bc : bns) bench_bn(bc, 2, bn_private);
  std::printf("\nsums in ms, weighted by layers (x > 1: oneDNN faster)\n");
  pool_net.print("max pool, main job's net");
  pool_lenet.print("max pool, LeNet");
  bn_net.print("BN, main job's net (shared stats)");
  bn_private.print("BN private (2 modality slices)");
  return 0;
#endif
}
