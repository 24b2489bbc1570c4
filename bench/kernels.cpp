// bench/kernels: achieved bandwidth of every memory-bound CUDA kernel at a large size, and its
// ratio to a device-to-device copy measured in the same run. Each figure is the median of 25
// runs timed with CUDA events on the compute stream, after 3 warm-up runs, on random data
// (uniform in [0.5, 1.5): never zeros, valid for log and pow). Ops are called through the
// public API, so the figures include what a user pays (the caching allocator's hit, the
// launch); later op families add rows to the table in main().
//
// Then the op-case tables' timing run (tests/op_cases/op_case.h): every case given bench
// shapes, forward + backward (every differentiable input's gradient, from a fixed random output
// gradient), median of its runs. A row is added in the family's table, not here.
//
// Usage: bench_kernels [log2 of the bytes per float32 input, default 28]
//        bench_kernels --ops [--cpu] [--runs N] [family or op ...]
//            only the op-case rows (of the named families or ops), on the GPU when one is
//            visible, else (or with --cpu) on the CPU.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "tests/op_cases/op_case.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/fusion.h"
#include "cuda/kernels.h"
#include "cuda/norm.h"
#include "cuda/runtime.h"
#endif

using namespace mmfuse;

#ifdef MMFUSE_WITH_CUDA
namespace {

constexpr int kWarmup = 3;
constexpr int kRuns = 25;

double median_ms(const std::function<void()>& work) {
  for (int i = 0; i < kWarmup; ++i) work();
  cuda::synchronize(0);
  std::vector<float> ms;
  for (int i = 0; i < kRuns; ++i) ms.push_back(cuda::time_on_stream(0, work));
  std::sort(ms.begin(), ms.end());
  return ms[kRuns / 2];
}

struct Row {
  std::string name;
  double bytes;  // bytes read + written by one run
  double ms;
};

}  // namespace
#endif

namespace {

bool cuda_visible() {
#ifdef MMFUSE_WITH_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string s;
  for (const Shape& shape : shapes) {
    if (!s.empty()) s += ' ';
    s += shape_str(shape);
  }
  return s;
}

// The op-case tables' timing run: each case with bench shapes whose family or op is in `only`
// (empty: all), forward + backward on `device`, the median of `runs` runs after one warm-up.
// Returns the number of rows.
int op_case_rows(Device device, int runs, const std::vector<std::string>& only) {
  std::printf("\n| family | case | bench inputs | forward + backward, median ms |\n|---|---|---|---:|\n");
  int rows = 0;
  for (const testing::OpTable& table : testing::all_op_tables())
    for (const testing::OpCase& c : table.cases) {
      if (c.bench_shapes.empty()) continue;
      if (!only.empty() && std::find(only.begin(), only.end(), table.family) == only.end() &&
          std::find(only.begin(), only.end(), c.op) == only.end())
        continue;
      TensorList inputs = testing::make_inputs(c, DType::f32, true, true, device);
      Tensor grad_out;
      auto work = [&] {
        for (const Tensor& t : inputs)
          if (t.requires_grad()) t.set_grad(Tensor());
        Tensor out = c.fn(inputs);
        if (!grad_out.defined()) {
          Generator gen(c.seed);
          grad_out = Tensor::rand(out.shape(), gen, -1, 1, DType::f32).to(device);
        }
        if (out.requires_grad()) out.backward(grad_out);
      };
      std::vector<double> ms;
      work();  // warm-up (and the output gradient)
#ifdef MMFUSE_WITH_CUDA
      if (device.is_cuda()) {
        cuda::synchronize(device.index);
        for (int i = 0; i < runs; ++i) ms.push_back(cuda::time_on_stream(device.index, work));
      }
#endif
      if (device.is_cpu())
        for (int i = 0; i < runs; ++i) {
          auto start = std::chrono::steady_clock::now();
          work();
          ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        }
      std::sort(ms.begin(), ms.end());
      std::printf("| %s | %s | %s | %.3f |\n", table.family.c_str(), c.name().c_str(), shapes_str(c.bench_shapes).c_str(),
                  ms[ms.size() / 2]);
      std::fflush(stdout);
      ++rows;
    }
  std::printf("\n(float32 on %s; %d runs after a warm-up%s)\n", device.str().c_str(), runs,
              device.is_cuda() ? ", CUDA events on the compute stream" : ", wall clock");
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--ops") == 0) {
    bool cpu = false;
    int runs = 0;
    std::vector<std::string> only;
    for (int i = 2; i < argc; ++i) {
      if (std::strcmp(argv[i], "--cpu") == 0) {
        cpu = true;
      } else if (std::strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
        runs = std::atoi(argv[++i]);
      } else {
        only.push_back(argv[i]);
      }
    }
    Device device = cpu || !cuda_visible() ? Device::cpu() : Device::cuda(0);
    if (runs <= 0) runs = device.is_cuda() ? 25 : 5;
    if (op_case_rows(device, runs, only) == 0) {
      std::fprintf(stderr, "bench_kernels: no op case with bench shapes matches\n");
      return 2;
    }
    return 0;
  }
#ifndef MMFUSE_WITH_CUDA
  std::printf("bench_kernels: mmfuse was built without CUDA; nothing to measure (--ops times the op cases on the CPU)\n");
  return 0;
#else
  if (cuda::device_count() == 0) {
    std::printf("bench_kernels: no CUDA device visible; nothing to measure (--ops times the op cases on the CPU)\n");
    return 0;
  }
  int log2_bytes = argc > 1 ? std::atoi(argv[1]) : 28;
  if (log2_bytes < 24 || log2_bytes > 33) {
    std::fprintf(stderr, "bench_kernels: log2 bytes must be in [24, 33]\n");
    return 2;
  }
  const int64_t n = (int64_t{1} << log2_bytes) / 4;  // float32 elements per input
  const double B = static_cast<double>(n) * 4;
  Device gpu = Device::cuda(0);
  cuda::DeviceInfo info = cuda::device_info(0);
  std::printf("bench_kernels on %s (sm_%d%d), %lld float32 elements (%s) per input\n\n", info.name.c_str(),
              info.major, info.minor, static_cast<long long>(n), cuda::format_bytes(static_cast<size_t>(B)).c_str());

  Generator gen(2024);
  auto random = [&](const Shape& s) { return Tensor::rand(s, gen, 0.5, 1.5, DType::f32).to(gpu); };
  Tensor x = random({n}), y = random({n}), g = random({n});
  Tensor out = Tensor::empty({n}, DType::f32, gpu);
  const int64_t cols = 1024, rows = n / cols;
  Tensor bias = random({cols}), scalar = random({}), mid = random({1, 64, 1});

  std::vector<Row> table;
  auto row = [&](const std::string& name, double bytes, const std::function<void()>& work) {
    table.push_back({name, bytes, median_ms(work)});
  };
  row("copy device-to-device", 2 * B, [&] { cuda::copy_device_to_device(out.raw_data(), x.raw_data(), n * 4, 0); });
  row("fill", B, [&] { out.fill_(1.5); });
  row("convert float32 -> float64", 3 * B, [&] { Tensor d = x.to(DType::f64); });
  row("relu", 2 * B, [&] { Tensor r = relu(x); });
  row("sigmoid", 2 * B, [&] { Tensor r = sigmoid(x); });
  row("exp", 2 * B, [&] { Tensor r = exp(x); });
  row("log", 2 * B, [&] { Tensor r = log(x); });
  row("affine (x * s + t)", 2 * B, [&] { Tensor r = x * 1.5 + 0.25; });
  row("relu backward", 4 * B, [&] {
    cuda::unary_backward<float>(x.data<float>(), y.data<float>(), g.data<float>(), out.data<float>(), n,
                                functors::Relu{}, 0);
  });
  row("tanh backward", 4 * B, [&] {
    cuda::unary_backward<float>(x.data<float>(), y.data<float>(), g.data<float>(), out.data<float>(), n,
                                functors::Tanh{}, 0);
  });
  row("add, equal shapes", 3 * B, [&] { Tensor r = add(x, y); });
  row("mul by a 0-d tensor", 2 * B, [&] { Tensor r = mul(x, scalar); });
  row("add [R, 1024] + [1024]", 2 * B, [&] { Tensor r = add(x.reshape({rows, cols}), bias); });
  row("add [R/64, 64, 1024] + [1, 64, 1]", 2 * B,
      [&] { Tensor r = add(x.reshape({rows / 64, 64, cols}), mid); });
  row("sum, all", B, [&] { Tensor r = sum(x); });
  row("sum [R, 1024] over dim 1", B, [&] { Tensor r = sum(x.reshape({rows, cols}), {1}); });
  row("sum [1024, R] over dim 0", B, [&] { Tensor r = sum(x.reshape({cols, rows}), {0}); });
  row("sum [R/64, 64, 1024] over dims 0, 2", B, [&] { Tensor r = sum(x.reshape({rows / 64, 64, cols}), {0, 2}); });
  row("max [R, 1024] over dim 1", B, [&] { Tensor r = max(x.reshape({rows, cols}), {1}); });
  row("max, all", B, [&] { Tensor r = max(x); });
  // Later families, on the same n elements seen as [N, 64, H, 128] images (planes of 128 x H).
  const int64_t img_h = std::max<int64_t>(1, n / (64 * 128 * 8));
  const Shape img = {n / (64 * img_h * 128), 64, img_h, 128};
  Tensor xi = x.reshape(img);
  Tensor bn_w = random({64}), bn_b = random({64}), bn_rm = random({64}), bn_rv = random({64});
  row("batch_norm training (stats + apply)", 3 * B,
      [&] { Tensor r = batch_norm(xi, bn_w, bn_b, bn_rm, bn_rv, BatchNormOptions{}); });
  row("dropout p=0.3", 2 * B, [&] { Tensor r = dropout(x, 0.3, true, gen); });
  row("max_pool2d 2x2/2", 1.25 * B, [&] { Tensor r = max_pool2d(xi, Pool2dOptions::square(2, 2)); });
  row("avg_pool2d 3x3/1 pad 1", 2 * B, [&] { Tensor r = avg_pool2d(xi, Pool2dOptions::square(3, 1, 1)); });
  row("upsample_bilinear x2 (of a quarter)", 2.5 * B, [&] {
    Tensor r = upsample_bilinear(xi.narrow(0, std::max<int64_t>(1, img[0] / 4)), img_h * 2, 256, false);
  });
  row("softmax [R, 1024] over dim 1", 2 * B, [&] { Tensor r = softmax(x.reshape({rows, cols}), 1); });
  row("mse_loss, mean", 2 * B, [&] { Tensor r = mse_loss(x, y); });

  // The fusion kernels on AsymFusion's stacked activations: 2 modalities x 16 samples, 256
  // channels of 128 x 128 (512 MiB per float32 tensor). Backward rows call the raw kernels
  // (no autograd, no forward).
  {
    const Shape fs = {2 * 16, 256, 128, 128};
    const int64_t fn = shape_numel(fs), rows_f = fs[0], ch = fs[1], inner = fs[2] * fs[3];
    const double FB = static_cast<double>(fn) * 4;
    Tensor fx = random(fs), fa = random(fs), fg = random(fs), fo = Tensor::empty(fs, DType::f32, gpu);
    Tensor fe = random({fs[0], fs[1]}), fde = Tensor::empty({fs[0], fs[1]}, DType::f32, gpu);
    const int64_t keep = channel_shuffle_kept(ch, 0.8), group_size = ch / 5;
    cuda::Exchange ex;
    ex.batch = 16;
    ex.modalities = 2;
    ex.receives = 3;
    row("fusion: copy device-to-device [32,256,128,128]", 2 * FB,
        [&] { cuda::copy_device_to_device(fo.raw_data(), fx.raw_data(), fn * 4, 0); });
    row("fusion: channel_shuffle forward", 2 * FB, [&] { Tensor r = channel_shuffle(fx, 2, 0.8); });
    row("fusion: channel_shuffle backward", 2 * FB, [&] {
      cuda::channel_shuffle_backward<float>(fg.data<float>(), fo.data<float>(), rows_f, ch, inner, keep, ex, 0);
    });
    row("fusion: pixel_shift_add forward (y, a -> out)", 3 * FB, [&] { Tensor r = pixel_shift_add(fx, fa, 2); });
    row("fusion: pixel_shift_add backward (d a)", 2 * FB, [&] {
      cuda::pixel_shift_add<float>(nullptr, fg.data<float>(), fo.data<float>(), rows_f, ch, fs[2], fs[3], group_size,
                                   4, 1, ex, true, 0);
    });
    row("fusion: channel_gate forward", 2 * FB, [&] { Tensor r = channel_gate(fx, fe); });
    row("fusion: channel_gate backward (dx and de)", 3 * FB, [&] {
      cuda::channel_gate_backward<float>(fx.data<float>(), fe.data<float>(), fg.data<float>(), fo.data<float>(),
                                         fde.data<float>(), rows_f * ch, inner, 2.0, 0);
    });
    // Private (per-modality) batch norm on the same tensor.
    BatchNormOptions private_bn;
    private_bn.modalities = 2;
    Tensor pw = random({2 * ch}), pb = random({2 * ch}), prm = random({2 * ch}), prv = random({2 * ch});
    row("fusion: batch_norm modalities=2 forward (stats + apply)", 3 * FB,
        [&] { Tensor r = batch_norm(fx, pw, pb, prm, prv, private_bn); });
    cpu::BatchNormGeometry geo;
    geo.modalities = 2;
    geo.batch_per_modality = 16;
    geo.channels = ch;
    geo.spatial = inner;
    Tensor pmean = Tensor::empty({2 * ch}, DType::f64, gpu), pvar = Tensor::empty({2 * ch}, DType::f64, gpu);
    Tensor pinv = Tensor::empty({2 * ch}, DType::f64, gpu), psums = Tensor::empty({2, 2 * ch}, DType::f64, gpu);
    double* sum_dy = psums.data<double>();
    double* sum_dy_xmu = sum_dy + 2 * ch;
    cuda::batch_norm_stats<float>(fx.data<float>(), geo, pmean.data<double>(), pvar.data<double>(), 0);
    cuda::batch_norm_prepare<float>(nullptr, nullptr, 2 * ch, true, 0, 0.1, 1e-5, pmean.data<double>(),
                                    pvar.data<double>(), pinv.data<double>(), 0);
    Tensor pdw = Tensor::empty({2 * ch}, DType::f32, gpu), pdb = Tensor::empty({2 * ch}, DType::f32, gpu);
    row("fusion: batch_norm modalities=2 backward (reduce + dx)", 5 * FB, [&] {
      cuda::batch_norm_backward_reduce<float>(fg.data<float>(), fx.data<float>(), geo, pmean.data<double>(), sum_dy,
                                              sum_dy_xmu, 0);
      cuda::batch_norm_param_grads<float>(sum_dy, sum_dy_xmu, pinv.data<double>(), 2 * ch, pdw.data<float>(),
                                          pdb.data<float>(), 0);
      cuda::batch_norm_backward_input<float>(fg.data<float>(), fx.data<float>(), geo, pmean.data<double>(),
                                             pinv.data<double>(), pw.data<float>(), sum_dy, sum_dy_xmu, true,
                                             fo.data<float>(), 0);
    });
  }

  double copy_gbs = table[0].bytes / (table[0].ms * 1e6);
  std::printf("| kernel | median ms | GB/s | vs copy |\n|---|---:|---:|---:|\n");
  for (const Row& r : table) {
    double gbs = r.bytes / (r.ms * 1e6);
    std::printf("| %s | %.3f | %.0f | %.2f |\n", r.name.c_str(), r.ms, gbs, gbs / copy_gbs);
  }
  std::printf("\n(GB/s = bytes read + written / median time, 1 GB = 1e9 B; %d runs after %d warm-ups)\n", kRuns, kWarmup);

  // Compute-bound: GEMM and a convolution, in TFLOP/s (2 flops per multiply-add), in each
  // precision.
  std::printf("\n| product | precision | median ms | TFLOP/s |\n|---|---|---:|---:|\n");
  Tensor ga = random({4096, 4096}), gb = random({4096, 4096});
  Tensor cx = random({32, 256, 56, 56}), cw = random({256, 256, 3, 3});
  Conv2dOptions pad1;
  pad1.pad_h = pad1.pad_w = 1;
  for (cuda::Precision p : {cuda::Precision::fp32, cuda::Precision::tf32}) {
    cuda::set_precision(p);
    double ms = median_ms([&] { Tensor r = matmul(ga, gb); });
    std::printf("| matmul 4096^3 | %s | %.3f | %.1f |\n", cuda::precision_name(p), ms, 2.0 * 4096 * 4096 * 4096 / (ms * 1e9));
    double flops = 2.0 * 32 * 256 * 56 * 56 * 256 * 9;
    ms = median_ms([&] { Tensor r = conv2d(cx, cw, Tensor(), pad1); });
    std::printf("| conv2d [32,256,56,56] x [256,256,3,3] pad 1 | %s | %.3f | %.1f |\n", cuda::precision_name(p), ms,
                flops / (ms * 1e9));
  }
  cuda::set_precision(cuda::Precision::fp32);
  op_case_rows(gpu, kRuns, {});
  std::printf("%s\n", cuda::allocator_summary(0).c_str());
  return 0;
#endif
}
