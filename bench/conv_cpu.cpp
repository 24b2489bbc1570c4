// CPU rate of the convolution and matmul kernels.
//
//   bench_conv_cpu                 GFLOP/s of conv2d forward and forward+backward for
//                                  x [8,64,32,32] * w [64,64,3,3] (padding 1), float32 (with
//                                  oneDNN where built and on, and with our own kernels) and
//                                  float64, and of a 512^3 matmul
//   bench_conv_cpu --zoo [NET] [--runs K]
//                                  every distinct convolution of NET's TRAIN phase (default
//                                  models/asymfusion/synthetic.prototxt, the main job), each
//                                  direction (forward, backward data, backward weight) timed
//                                  on our kernels, on oneDNN with our plain NCHW layouts and
//                                  on oneDNN with its blocked layouts (+ reorders): ms per
//                                  call, the ratio to ours, and the totals weighted by how
//                                  many layers share the geometry
//
// Medians of K runs (default 7) after a warm-up. Run with OMP_NUM_THREADS set to compare
// thread counts; MMFUSE_DNNL=0 is not needed (the program switches by itself).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bench/host_timing.h"
#include "core/cpu/conv.h"
#include "core/cpu/dnnl.h"
#include "core/cpu/parallel.h"
#include "core/net.h"
#include "core/ops.h"
#include "core/prototxt.h"
#include "layers/conv_params.h"

using namespace mmfuse;

namespace {

double median_seconds(const std::function<void()>& f, int runs = 7) { return bench::median_ms(f, runs) / 1e3; }

void report(const char* what, double flops, double seconds) {
  std::printf("%-52s %8.2f ms  %7.2f GFLOP/s\n", what, seconds * 1e3, flops / seconds * 1e-9);
}

void bench_conv(DType dtype, bool dnnl) {
  cpu::set_dnnl_enabled(dnnl);
  Generator gen(1);
  const int64_t N = 8, C = 64, H = 32, W = 32, O = 64, K = 3;
  Tensor x = Tensor::randn({N, C, H, W}, gen, 0, 1, dtype).set_requires_grad();
  Tensor w = Tensor::randn({O, C, K, K}, gen, 0, 0.05, dtype).set_requires_grad();
  Tensor b = Tensor::zeros({O}, dtype).set_requires_grad();
  Conv2dOptions options{.pad_h = 1, .pad_w = 1};
  Tensor gy = Tensor::randn({N, O, H, W}, gen, 0, 1, dtype);
  double fwd_flops = 2.0 * N * O * H * W * C * K * K;  // one multiply-add per weight tap per output
  std::string type = dtype == DType::f32 ? (cpu::dnnl_enabled() ? "float32, oneDNN" : "float32, ours") : "float64";
  char label[96];
  double fwd = median_seconds([&] {
    autograd::NoGradGuard no_grad;
    conv2d(x, w, b, options);
  });
  std::snprintf(label, sizeof label, "conv2d forward %s", type.c_str());
  report(label, fwd_flops, fwd);
  double both = median_seconds([&] {
    x.set_grad(Tensor()), w.set_grad(Tensor()), b.set_grad(Tensor());
    conv2d(x, w, b, options).backward(gy);
  });
  std::snprintf(label, sizeof label, "conv2d forward+backward (dx, dw, db) %s", type.c_str());
  report(label, 3 * fwd_flops, both);
}

void bench_matmul(DType dtype) {
  Generator gen(2);
  const int64_t n = 512;
  Tensor a = Tensor::randn({n, n}, gen, 0, 1, dtype), b = Tensor::randn({n, n}, gen, 0, 1, dtype);
  double s = median_seconds([&] { matmul(a, b); });
  report(dtype == DType::f32 ? "matmul 512^3 float32" : "matmul 512^3 float64", 2.0 * n * n * n, s);
}

// The geometry of every Convolution and Deconvolution layer of a net, in conv2d's terms
// (core/cpu/conv.h: a Deconvolution's top is the image), with how many layers share it.
std::vector<std::pair<cpu::ConvGeometry, int>> net_convolutions(const std::string& path) {
  Net net(read_net(path), proto::TRAIN);
  std::vector<std::pair<cpu::ConvGeometry, int>> found;
  for (size_t i = 0; i < net.layers().size(); ++i) {
    const Layer& layer = *net.layers()[i];
    bool transposed = layer.type() == "Deconvolution";
    if (layer.type() != "Convolution" && !transposed) continue;
    const auto& p = layer.layer_param().convolution_param();
    const Shape& bottom = net.blob_shape(net.bottom_names(i)[0]);
    const Shape& top = net.blob_shape(net.top_names(i)[0]);
    auto geo = layers::read_conv_geometry(p, bottom, [&](auto&&...) { throw Error("bad layer " + layer.name()); });
    const Shape& image = transposed ? top : bottom;
    const Shape& out = transposed ? bottom : top;
    cpu::ConvGeometry g;
    g.batch = image[0], g.channels = image[1], g.height = image[2], g.width = image[3];
    g.out_channels = out[1], g.out_height = out[2], g.out_width = out[3];
    g.kernel_h = geo.kernel_h, g.kernel_w = geo.kernel_w, g.stride_h = geo.stride_h, g.stride_w = geo.stride_w;
    g.pad_h = geo.pad_h, g.pad_w = geo.pad_w, g.dilation_h = geo.dilation_h, g.dilation_w = geo.dilation_w;
    g.groups = p.group();
    auto same = [&](const auto& e) { return std::memcmp(&e.first, &g, sizeof g) == 0; };
    if (auto it = std::find_if(found.begin(), found.end(), same); it != found.end()) ++it->second;
    else found.push_back({g, 1});
  }
  return found;
}

std::string describe(const cpu::ConvGeometry& g) {
  char s[160];
  std::snprintf(s, sizeof s, "%lldx%lldx%lldx%lld %lld->%lld k%lldx%lld s%lld p%lld%s%s",
                (long long)g.batch, (long long)g.channels, (long long)g.height, (long long)g.width,
                (long long)g.channels, (long long)g.out_channels, (long long)g.kernel_h, (long long)g.kernel_w,
                (long long)g.stride_h, (long long)g.pad_h, g.dilation_h > 1 ? " dil" : "", g.groups > 1 ? " grp" : "");
  return s;
}

int bench_zoo(const std::string& path, int runs) {
  auto convs = net_convolutions(path);
  std::printf("%s: %zu distinct convolutions; %s; %d thread(s); median of %d runs, ms per call\n", path.c_str(),
              convs.size(), cpu::dnnl_summary().c_str(), cpu::max_threads(), runs);
  if (!cpu::dnnl_built()) std::printf("(built without oneDNN: only our kernels are timed)\n");
  const char* directions[] = {"fwd", "bwd-data", "bwd-weight"};
  struct Mode {
    const char* name;
    bool dnnl;
    cpu::DnnlLayout layout;
  };
  std::vector<Mode> modes = {{"ours", false, cpu::DnnlLayout::plain}};
  if (cpu::dnnl_built()) {
    modes.push_back({"dnnl-plain", true, cpu::DnnlLayout::plain});
    modes.push_back({"dnnl-blocked", true, cpu::DnnlLayout::blocked});
    modes.push_back({"dnnl-auto", true, cpu::DnnlLayout::automatic});
  }
  std::printf("%-40s %3s %-10s", "geometry (N x C x H x W C->O kernel)", "n", "direction");
  for (const Mode& m : modes) std::printf(" %12s", m.name);
  std::printf("  best\n");
  std::vector<double> total(modes.size() * 3, 0.0);
  Generator gen(3);
  for (const auto& [g, count] : convs) {
    Tensor image = Tensor::randn({g.batch, g.channels, g.height, g.width}, gen);
    Tensor weight = Tensor::randn({g.out_channels, g.group_channels(), g.kernel_h, g.kernel_w}, gen, 0, 0.05);
    Tensor out = Tensor::randn({g.batch, g.out_channels, g.out_height, g.out_width}, gen);
    Tensor result_image = Tensor::empty(image.shape()), result_weight = Tensor::empty(weight.shape());
    Tensor result_out = Tensor::empty(out.shape());
    for (int d = 0; d < 3; ++d) {
      std::printf("%-40s %3d %-10s", describe(g).c_str(), count, directions[d]);
      double best = 1e300;
      size_t best_mode = 0;
      std::vector<double> ms(modes.size());
      Tensor result = d == 0 ? result_out : d == 1 ? result_image : result_weight;
      std::vector<float> reference;  // our kernels' result: every oneDNN mode is checked against it
      double worst = 0;
      for (size_t m = 0; m < modes.size(); ++m) {
        cpu::set_dnnl_enabled(modes[m].dnnl);
        cpu::set_dnnl_layout(modes[m].layout);
        ms[m] = 1e3 * median_seconds(
                          [&] {
                            if (d == 0) cpu::conv_forward<float>(g, image.data<float>(), weight.data<float>(),
                                                                 result_out.data<float>());
                            else if (d == 1)
                              cpu::conv_backward_data<float>(g, out.data<float>(), weight.data<float>(),
                                                             result_image.data<float>());
                            else
                              cpu::conv_backward_weight<float>(g, image.data<float>(), out.data<float>(),
                                                               result_weight.data<float>());
                          },
                          runs);
        std::vector<float> got = result.to_vector<float>();
        if (m == 0) reference = got;
        double scale = 0, err = 0;
        for (size_t i = 0; i < got.size(); ++i)
          scale = std::max(scale, std::abs(double(reference[i]))),
          err = std::max(err, std::abs(double(got[i]) - double(reference[i])));
        worst = std::max(worst, err / std::max(scale, 1e-30));
        total[m * 3 + d] += count * ms[m];
        if (ms[m] < best) best = ms[m], best_mode = m;
      }
      for (size_t m = 0; m < modes.size(); ++m) {
        if (m == 0) std::printf(" %12.3f", ms[m]);
        else std::printf(" %6.3f %5.2fx", ms[m], ms[m] / ms[0]);
      }
      std::printf("  %s (max diff %.1e)", modes[best_mode].name, worst);
      if (cpu::dnnl_built()) {
        cpu::set_dnnl_enabled(true);
        cpu::set_dnnl_layout(cpu::DnnlLayout::automatic);
        std::printf(" [auto: %s]", cpu::dnnl_conv_impl(static_cast<cpu::ConvDirection>(d), g).c_str());
      }
      std::printf("\n");
    }
  }
  std::printf("total over the net's layers (ms per step):\n");
  for (size_t m = 0; m < modes.size(); ++m) {
    double sum = total[m * 3] + total[m * 3 + 1] + total[m * 3 + 2];
    std::printf("  %-13s fwd %8.2f  bwd-data %8.2f  bwd-weight %8.2f  all %8.2f  (%.2fx ours)\n", modes[m].name,
                total[m * 3], total[m * 3 + 1], total[m * 3 + 2], sum,
                sum / (total[0] + total[1] + total[2]));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 7;
  std::string zoo;
  bool want_zoo = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--zoo") {
      want_zoo = true;
      if (i + 1 < argc && argv[i + 1][0] != '-') zoo = argv[++i];
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: bench_conv_cpu [--zoo [NET.prototxt]] [--runs K]\n");
      return 2;
    }
  }
  if (want_zoo) {
    if (zoo.empty()) zoo = std::string(MMFUSE_SOURCE_DIR) + "/models/asymfusion/synthetic.prototxt";
    return bench_zoo(zoo, runs);
  }
  bool dnnl_on = cpu::dnnl_enabled();
  std::printf("x [8,64,32,32] * w [64,64,3,3], padding 1; median of %d runs; %s\n", runs, cpu::dnnl_summary().c_str());
  if (dnnl_on) bench_conv(DType::f32, true);
  bench_conv(DType::f32, false);
  bench_conv(DType::f64, false);
  bench_matmul(DType::f32);
  bench_matmul(DType::f64);
  return 0;
}
