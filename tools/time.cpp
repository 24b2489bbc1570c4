// mmfuse time --model M [--iterations K] [--gpu N] [--phase train|test] [--precision fp32|tf32]
//             [--conv-search benchmark|heuristics] [--nondeterministic]
//
// A warm-up iteration, then K iterations timed layer by layer (forward around each layer's
// forward; backward from autograd's backward hook, attributing each node to the layer that
// recorded it, Node::scope), then K whole iterations (forward + backward + an SGD step) timed
// end to end: mean and median, and on CUDA the peak device memory. Inputs fed by Input layers
// are random (zeros for blobs whose name contains "label"). On CUDA each measurement
// synchronises the device first.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include "core/cpu/dnnl.h"
#include "core/cpu/parallel.h"
#include "core/ops.h"
#include "core/optimizer.h"
#include "core/prototxt.h"
#include "core/solver.h"
#include "cuda/precision.h"
#include "tools/command.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace mmfuse::tools {

namespace {
using Clock = std::chrono::steady_clock;

void sync(const Device& d) {
#ifdef MMFUSE_WITH_CUDA
  if (d.is_cuda()) cuda::synchronize(d.index);
#else
  (void)d;
#endif
}
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
}  // namespace

// The report `mmfuse time` prints (exposed for tests through the command).
int time_command(const std::vector<std::string>& argv) {
  Args args("time", argv, {"model", "iterations", "gpu", "phase", "precision", "conv-search"}, {"nondeterministic"});
  if (!args.positional().empty())
    throw Error("time: unexpected argument '" + args.positional()[0] + "' (see `mmfuse help time`)");
  if (!args.has("model")) throw Error("time: --model M is required (see `mmfuse help time`)");
  int iterations = args.get_int("iterations", 50);
  if (iterations < 1) throw Error("time: --iterations must be >= 1");
  std::string phase_name = args.get("phase", "train");
  if (phase_name != "train" && phase_name != "test") throw Error("time: --phase must be train or test");
  Device device = args.has("gpu") ? Device::cuda(args.get_int("gpu", 0)) : Device::cpu();
  cuda::Precision precision = cuda::parse_precision(args.get("precision", "tf32"));
  cuda::set_precision(precision);
  apply_conv_search_flags(args, "time");
  Net net(read_net(args.get("model")), phase_name == "train" ? proto::TRAIN : proto::TEST, device);

  Generator gen(1);
  std::map<std::string, Tensor> inputs;
  for (const auto& [name, shape] : net.inputs())
    inputs[name] = name.find("label") != std::string::npos ? Tensor::zeros(shape) : Tensor::rand(shape, gen);

  std::vector<OptimParam> ps;
  for (const Param& p : net.learnable_params()) ps.push_back({p.name, p.value, p.lr_mult, p.decay_mult});
  // The update of a typical run (SGD, momentum 0.9, weight decay 5e-4, learning rate 0.01), so
  // that the timed step moves the same bytes as training does (momentum buffers included).
  proto::SolverParameter sp;
  sp.set_type("SGD");
  sp.set_momentum(0.9);
  sp.set_weight_decay(0.0005);
  Optimizer optimizer(sp, ps);
  bool train = phase_name == "train";

  // Batch indices run on as in training, so that data layers serve their prefetched batches
  // (the same index every time reads as a seek: the prefetch is dropped and redone).
  int64_t batch = 0;
  auto one = [&](const std::function<void(size_t)>& before, const std::function<void(size_t, TensorList&)>& after) {
    Net::Hooks hooks{before, after};
    net.forward(inputs, batch++, &hooks);
    Tensor loss = net.loss();
    if (train && loss.requires_grad()) loss.backward();
    optimizer.zero_grad();
  };
  std::string where = device.str() + (device.is_cuda() ? std::string(", ") + cuda::precision_name(precision)
                                                      : ", " + std::to_string(cpu::max_threads()) + " thread(s), " +
                                                            cpu::dnnl_summary());
  std::printf("Timing %s (%s, %s): 1 warm-up iteration, then %d\n", net.name().c_str(), phase_name.c_str(),
              where.c_str(), iterations);
  one(nullptr, nullptr);
  sync(device);
#ifdef MMFUSE_WITH_CUDA
  // The peak of the timed iterations (as PyTorch's max_memory_allocated after a reset): the
  // warm-up's one-off algorithm trials are not part of a training step.
  if (device.is_cuda()) cuda::reset_peak_stats(device.index);
#endif

  size_t n = net.layers().size();
  std::vector<double> fwd(n, 0.0);
  std::map<std::string, double> bwd;
  Clock::time_point layer_start, node_start;
  autograd::set_backward_hook([&](const autograd::Node& node, bool before) {
    if (before) {
      sync(device);
      node_start = Clock::now();
    } else {
      sync(device);
      bwd[node.scope.empty() ? std::string("(no layer)") : node.scope] += ms_since(node_start);
    }
  });
  double passes_ms = 0;  // the same iterations whole (forward, backward, zero_grad)
  try {
    for (int it = 0; it < iterations; ++it) {
      sync(device);
      auto pass_start = Clock::now();
      one([&](size_t) { sync(device); layer_start = Clock::now(); },
          [&](size_t i, TensorList&) { sync(device); fwd[i] += ms_since(layer_start); });
      sync(device);
      passes_ms += ms_since(pass_start);
    }
  } catch (...) {
    autograd::set_backward_hook(nullptr);
    throw;
  }
  autograd::set_backward_hook(nullptr);

  size_t wn = 5, wt = 4;
  for (const auto& l : net.layers()) wn = std::max(wn, l->name().size()), wt = std::max(wt, l->type().size());
  std::printf("  %-*s  %-*s  %12s  %12s\n", static_cast<int>(wn), "layer", static_cast<int>(wt), "type",
              "forward ms", "backward ms");
  double tf = 0, tb = 0;
  for (size_t i = 0; i < n; ++i) {
    const Layer& l = *net.layers()[i];
    double f = fwd[i] / iterations, b = 0;
    if (auto it = bwd.find(l.name()); it != bwd.end()) b = it->second / iterations, bwd.erase(it);
    tf += f, tb += b;
    std::printf("  %-*s  %-*s  %12.4f  %12.4f\n", static_cast<int>(wn), l.name().c_str(), static_cast<int>(wt),
                l.type().c_str(), f, b);
  }
  for (const auto& [scope, t] : bwd) {
    tb += t / iterations;
    std::printf("  %-*s  %-*s  %12s  %12.4f\n", static_cast<int>(wn), scope.c_str(), static_cast<int>(wt), "", "",
                t / iterations);
  }
  std::printf("  %-*s  %-*s  %12.4f  %12.4f\n", static_cast<int>(wn), "total", static_cast<int>(wt), "", tf, tb);
  // What no layer's rows hold, from the same iterations (not the difference of two runs): the
  // autograd engine between nodes, gradients summed where a blob feeds two layers, the loss sum,
  // zero_grad.
  std::printf("Outside the layers (autograd engine, gradient sums, zero_grad; the same iterations): mean %.4f ms\n",
              std::max(0.0, passes_ms / iterations - tf - tb));

  std::vector<double> whole;
  double update_ms = 0;  // the optimizer steps' share of the whole iterations
  for (int it = 0; it < iterations; ++it) {
    sync(device);
    auto t0 = Clock::now();
    net.forward(inputs, batch++);
    Tensor loss = net.loss();
    if (train && loss.requires_grad()) {
      loss.backward();
      Clock::time_point u0;
      if (!device.is_cuda()) u0 = Clock::now();  // no sync on CUDA: it would change the step
      optimizer.step(0.01);
      if (!device.is_cuda()) update_ms += ms_since(u0);
    }
    optimizer.zero_grad();
    sync(device);
    whole.push_back(ms_since(t0));
  }
  double mean = 0;
  for (double t : whole) mean += t;
  mean /= static_cast<double>(whole.size());
  std::sort(whole.begin(), whole.end());
  double median = whole.size() % 2 ? whole[whole.size() / 2]
                                   : 0.5 * (whole[whole.size() / 2 - 1] + whole[whole.size() / 2]);
  std::printf("Whole iteration (%s): mean %.4f ms, median %.4f ms over %d iterations\n",
              train ? "forward + backward + update" : "forward", mean, median, iterations);
  if (train && !device.is_cuda())
    std::printf("  of which the update (SGD step): mean %.4f ms\n", update_ms / iterations);
#ifdef MMFUSE_WITH_CUDA
  if (device.is_cuda()) {
    size_t peak = cuda::allocator_stats(device.index).peak_allocated;
    std::printf("Peak device memory: %.1f MiB (%zu bytes)\n", static_cast<double>(peak) / (1 << 20), peak);
  }
#endif
  return 0;
}

namespace {
CommandRegistrar registrar({"time", "time a model layer by layer and per iteration",
                            "mmfuse time --model M [--iterations K] [--gpu N] [--phase train|test]\n"
                            "            [--precision fp32|tf32] [--conv-search benchmark|heuristics]\n"
                            "            [--nondeterministic]\n"
                            "  One warm-up iteration; then K iterations (default 50) timed per layer (forward,\n"
                            "  and backward attributed through autograd's node scopes); then K whole iterations\n"
                            "  (forward + backward + SGD step with momentum 0.9; forward only with --phase\n"
                            "  test): mean and median; on the CPU also the SGD step's mean share of them.\n"
                            "  Input layers are fed random values (zeros for blobs named *label*). --precision\n"
                            "  sets the matmul and convolution switches on CUDA (default tf32, as the solver);\n"
                            "  with --gpu the allocator's peak device memory over the timed iterations is\n"
                            "  printed last.\n" +
                                std::string(kConvSearchUsage),
                            time_command});
}  // namespace

}  // namespace mmfuse::tools
