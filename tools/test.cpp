// mmfuse test --model M --weights W [--iterations K] [--gpu N] [--per-class] [--confusion]
#include <cstdio>

#include "core/distributed.h"
#include "core/evaluate.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "tools/command.h"

namespace mmfuse::tools {
namespace {

int test_on(const Args& args, const dist::World& world) {
  if (!args.positional().empty())
    throw Error("test: unexpected argument '" + args.positional()[0] + "' (see `mmfuse help test`)");
  if (!args.has("model") || !args.has("weights"))
    throw Error("test: --model M and --weights W are required (see `mmfuse help test`)");
  int iterations = args.get_int("iterations", 50);
  Device device = args.has("gpu") ? Device::cuda(args.get_int("gpu", 0) + world.local_rank()) : Device::cpu();
  Net net(read_net(args.get("model")), proto::TEST, device);
  CopyReport r = load_weights(net, args.get("weights"));
  if (!r.missing.empty() || !r.mismatched.empty()) std::printf("Weights:\n%s", r.table().c_str());
  TestResult result = evaluate(net, iterations, "Test");  // each rank its shard, summed over the ranks
  if (!world.is_root()) return 0;
  if (world.distributed())
    std::printf("Tested %d batches on each of %d ranks:\n%s", iterations, world.size(), result.format().c_str());
  else
    std::printf("Tested %d batches:\n%s", iterations, result.format().c_str());
  if (args.has("per-class")) std::printf("Per class:\n%s", result.format_per_class().c_str());
  if (args.has("confusion")) std::printf("Confusion:\n%s", result.format_confusion().c_str());
  return 0;
}

int test(const std::vector<std::string>& argv) {
  Args args("test", argv, {"model", "weights", "iterations", "gpu"}, {"per-class", "confusion"});
  dist::World& world = dist::init();
  if (!world.distributed()) return test_on(args, world);
  int code = 1;
  try {
    code = test_on(args, world);
  } catch (const std::exception& e) {
    world.abort(e.what(), 1);
  }
  dist::finalize();
  return code;
}

CommandRegistrar registrar({"test", "score a trained model on its TEST phase",
                            "mmfuse test --model M --weights W [--iterations K] [--gpu N] [--per-class] [--confusion]\n"
                            "  Builds the TEST phase of M, loads W, runs K batches (default 50) and prints\n"
                            "  each output averaged over the batches; SegmentationMetric tops are summed\n"
                            "  and printed as pixel accuracy, mean accuracy and mIoU per branch;\n"
                            "  --per-class adds each class's IoU and accuracy, --confusion each\n"
                            "  branch's confusion matrix in percent of the ground-truth rows.\n"
                            "  Under mpirun -np N each rank runs K batches of its shard (N x batch samples\n"
                            "  per batch index) and the sums are reduced: confusion matrices summed, outputs\n"
                            "  averaged over all ranks' batches; --gpu N gives local rank k device N + k.",
                            test});

}  // namespace
}  // namespace mmfuse::tools
