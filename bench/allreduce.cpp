// The all-reduce cost of one data-parallel step: the main job's train net (or --model M),
// gradients of its learnable parameters averaged over the ranks by DataParallel exactly as the
// solver does (buckets of --bucket-mb, MPI for CPU tensors), timed over --steps steps after 3
// warm-ups. Run under the launcher:
//   mpirun -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 ./build/bench_allreduce
//          [--model M] [--steps 50] [--bucket-mb 25]
// Rank 0 prints the gradient bytes, the median and mean milliseconds per step and the bus
// bandwidth (2 (N-1)/N x bytes / time, NCCL's convention). One process alone says so.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/error.h"
#include "core/data_parallel.h"
#include "core/distributed.h"
#include "core/prototxt.h"
#include "tests/temp_dir.h"

using namespace mmfuse;

int main(int argc, char** argv) {
  try {
    std::string model = (testing::source_root() / "models/asymfusion/synthetic.prototxt").string();
    int steps = 50;
    double bucket_mb = 25;
    for (int i = 1; i + 1 < argc; i += 2) {
      std::string flag = argv[i], value = argv[i + 1];
      if (flag == "--model") model = value;
      else if (flag == "--steps") steps = std::max(1, std::atoi(value.c_str()));
      else if (flag == "--bucket-mb") bucket_mb = std::atof(value.c_str());
      else throw Error("bench_allreduce: unknown flag " + flag);
    }
    dist::World& world = dist::init(60);
    if (!world.distributed()) {
      std::printf("bench_allreduce: one process; start it under mpirun -np N (N >= 2)\n");
      return 0;
    }
    Net net(read_net(model), proto::TRAIN);
    std::vector<OptimParam> params;
    size_t bytes = 0;
    for (const Param& p : net.learnable_params()) {
      Generator gen(7 + world.rank());
      p.value.set_grad(Tensor::randn(p.value.shape(), gen));
      params.push_back({p.name, p.value, p.lr_mult, p.decay_mult});
      bytes += static_cast<size_t>(p.value.numel()) * sizeof(float);
    }
    DataParallel dp(world, bucket_mb);
    std::vector<double> ms;
    for (int s = 0; s < steps + 3; ++s) {
      world.agree_sum({0.0}, "barrier");
      auto t0 = std::chrono::steady_clock::now();
      dp.average_gradients(params, s);
      double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (s >= 3) ms.push_back(t);
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    double mean = 0;
    for (double v : ms) mean += v / static_cast<double>(ms.size());
    const double median = sorted[sorted.size() / 2], n = world.size();
    if (world.is_root())
      std::printf("%s: %zu learnable parameters, %.2f MB of float32 gradients, %zu buckets of <= %g MiB, %d ranks\n"
                  "all-reduce per step: median %.3f ms, mean %.3f ms; bus bandwidth %.3f GB/s\n",
                  model.c_str(), bytes / 4, bytes / 1e6, dp.buckets().size(), bucket_mb, world.size(), median, mean,
                  2 * (n - 1) / n * static_cast<double>(bytes) / (median * 1e-3) / 1e9);
    dist::finalize();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce: %s\n", e.what());
    return 1;
  }
}
