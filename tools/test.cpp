// mmfuse test --model M --weights W [--iterations K] [--gpu N] [--per-class] [--confusion]
#include <cstdio>

#include "core/evaluate.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "tools/command.h"

namespace mmfuse::tools {
namespace {

int test(const std::vector<std::string>& argv) {
  Args args("test", argv, {"model", "weights", "iterations", "gpu"}, {"per-class", "confusion"});
  if (!args.positional().empty())
    throw Error("test: unexpected argument '" + args.positional()[0] + "' (see `mmfuse help test`)");
  if (!args.has("model") || !args.has("weights"))
    throw Error("test: --model M and --weights W are required (see `mmfuse help test`)");
  int iterations = args.get_int("iterations", 50);
  Device device = args.has("gpu") ? Device::cuda(args.get_int("gpu", 0)) : Device::cpu();
  Net net(read_net(args.get("model")), proto::TEST, device);
  CopyReport r = load_weights(net, args.get("weights"));
  if (!r.missing.empty() || !r.mismatched.empty() || !r.source.empty()) std::printf("Weights:\n%s", r.table().c_str());
  TestResult result = evaluate(net, iterations, "Test");
  std::printf("Tested %d batches:\n%s", iterations, result.format().c_str());
  if (args.has("per-class")) std::printf("Per class:\n%s", result.format_per_class().c_str());
  if (args.has("confusion")) std::printf("Confusion:\n%s", result.format_confusion().c_str());
  return 0;
}

CommandRegistrar registrar({"test", "score a trained model on its TEST phase",
                            "mmfuse test --model M --weights W [--iterations K] [--gpu N] [--per-class] [--confusion]\n"
                            "  Builds the TEST phase of M, loads W (.weights or a Caffe .caffemodel), runs K\n"
                            "  batches (default 50) and prints each output averaged over the batches;\n"
                            "  SegmentationMetric tops are summed and printed as pixel accuracy, mean\n"
                            "  accuracy and mIoU per branch;\n"
                            "  --per-class adds each class's IoU and accuracy, --confusion each\n"
                            "  branch's confusion matrix in percent of the ground-truth rows.",
                            test});

}  // namespace
}  // namespace mmfuse::tools
