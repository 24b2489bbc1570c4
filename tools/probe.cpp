// mmfuse probe --model M [--weights W] [--iterations K] [--gpu N] [--samples S] [--log FILE]
//              [--compare MODEL[:WEIGHTS] ...] [--no-ablations] --out DIR
#include <cstdio>
#include <filesystem>
#include <memory>
#include <regex>

#include "core/prototxt.h"
#include "core/snapshot.h"
#include "probe/report.h"
#include "tools/command.h"

namespace mmfuse::tools {
namespace {

namespace fs = std::filesystem;

// The metrics log a solver wrote beside snapshot `weights` (<prefix>_iter_<n>.weights ->
// <prefix>_metrics.jsonl), when it exists.
std::string metrics_log_beside(const std::string& weights) {
  std::smatch m;
  static const std::regex snapshot("(.*)_iter_[0-9]+\\.[a-z]+$");
  if (!std::regex_match(weights, m, snapshot)) return "";
  std::string log = m[1].str() + "_metrics.jsonl";
  return fs::exists(log) ? log : "";
}

// What the report says in place of a weights file.
const char* const kUntrained = "(none: as initialised)";

int probe_command(const std::vector<std::string>& argv) {
  Args args("probe", argv, {"model", "weights", "iterations", "gpu", "samples", "log", "out", "compare"},
            {"no-ablations"});
  if (!args.positional().empty())
    throw Error("probe: unexpected argument '" + args.positional()[0] + "' (see `mmfuse help probe`)");
  if (!args.has("model") || !args.has("out"))
    throw Error("probe: --model M and --out DIR are required (see `mmfuse help probe`)");
  probe::ProbeOptions options;
  options.iterations = args.get_int("iterations", options.iterations);
  options.image_samples = args.get_int("samples", options.image_samples);
  options.ablations = !args.has("no-ablations");
  options.metrics_log = args.has("log") ? args.get("log") : metrics_log_beside(args.get("weights", ""));
  Device device = args.has("gpu") ? Device::cuda(args.get_int("gpu", 0)) : Device::cpu();
  Net net(read_net(args.get("model")), proto::TEST, device);
  if (args.has("weights")) {
    CopyReport weights = load_weights(net, args.get("weights"));
    if (!weights.missing.empty() || !weights.mismatched.empty()) std::printf("Weights:\n%s", weights.table().c_str());
  } else {
    std::printf("No --weights: probing the model as initialised (seed 0), untrained.\n");
  }
  // --compare MODEL[:WEIGHTS]: other models run on the same batches (probe::Comparison).
  std::vector<std::unique_ptr<Net>> others;
  std::vector<probe::Compared> compared;
  for (const auto& spec : args.get_all("compare")) {
    size_t colon = spec.find(':');
    std::string model = spec.substr(0, colon), weights = colon == std::string::npos ? "" : spec.substr(colon + 1);
    others.push_back(std::make_unique<Net>(read_net(model), proto::TEST, device));
    if (!weights.empty()) load_weights(*others.back(), weights);
    compared.push_back({model, weights.empty() ? kUntrained : weights, others.back().get()});
  }
  probe::ProbeResult result = probe::run_probe(net, options, compared);
  result.model = args.get("model");
  result.weights = args.has("weights") ? args.get("weights") : kUntrained;
  probe::write_probe(result, args.get("out"));
  std::printf("Probed %d test batches of %s%s:\n%s", options.iterations, args.get("model").c_str(),
              options.metrics_log.empty() ? "" : (" (training path from " + options.metrics_log + ")").c_str(),
              probe::probe_summary(result).c_str());
  std::printf("Report: %s\n", (fs::path(args.get("out")) / "index.html").string().c_str());
  return 0;
}

CommandRegistrar registrar(
    {"probe", "measure what the fusion does inside a trained model; writes an HTML report",
     "mmfuse probe --model M [--weights W] --out DIR [--iterations K] [--gpu N] [--samples S]\n"
     "             [--log METRICS.jsonl] [--compare MODEL[:WEIGHTS] ...] [--no-ablations]\n"
     "  Runs K test batches (default 8) of the TEST phase of M with W and measures, at every\n"
     "  fusion-relevant layer found by type: private BatchNorm statistics and the distance\n"
     "  between the modalities' Gaussians, the energy each branch receives through channel\n"
     "  shuffle / pixel shift, MMTM gates, linear CKA between the modality branches, the\n"
     "  ensemble's weights (and their path over training from the metrics log, found beside\n"
     "  a snapshot or given by --log), and test-time ablations re-scored with the model's own\n"
     "  metric (each fusion layer off, each modality zeroed / noise / swapped, the ensemble\n"
     "  replaced by each branch; --no-ablations skips them). Feature images of S samples\n"
     "  (default 2). --compare runs other models (single-modality baselines, say) on the same\n"
     "  batches: CKA between each of this model's branches and their blob of the same name.\n"
     "  Without W, the model as initialised. Writes DIR/probe.json, DIR/index.html\n"
     "  and DIR/images/; docs/probe.md.",
     probe_command});

}  // namespace
}  // namespace mmfuse::tools
