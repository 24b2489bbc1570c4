// mmfuse train --solver S [--weights W | --snapshot S] [--gpu N] [--precision fp32|tf32] [--max-iter N]
//              [--conv-search heuristics|benchmark] [--nondeterministic]
#include <cstdio>

#include "core/prototxt.h"
#include "core/multi_solver.h"
#include "core/solver.h"
#include "tools/command.h"

namespace mmfuse::tools {
namespace {

int train(const std::vector<std::string>& argv) {
  Args args("train", argv, {"solver", "weights", "snapshot", "gpu", "precision", "max-iter", "conv-search"},
            {"nondeterministic"});
  if (!args.positional().empty())
    throw Error("train: unexpected argument '" + args.positional()[0] + "' (see `mmfuse help train`)");
  if (!args.has("solver")) throw Error("train: --solver S is required (see `mmfuse help train`)");
  if (args.get("solver").empty()) throw Error("train: --solver is empty: give the solver prototxt file");
  if (args.has("weights") && args.has("snapshot"))
    throw Error("train: give --weights (fine-tune) or --snapshot (resume), not both");
  apply_conv_search_flags(args, "train");
  SolverOptions opt;
  if (args.has("gpu")) opt.device = Device::cuda(args.get_int("gpu", 0));
  opt.precision = args.get("precision");
  opt.max_iter = args.get_int("max-iter", -1);
  if (args.has("max-iter") && opt.max_iter < 0)
    throw Error("train: --max-iter must be >= 0, got " + args.get("max-iter"));
  std::string path = args.get("solver");
  proto::SolverParameter param = read_solver(path);
  if (is_multi_net(param)) {  // several nets, one schedule (core/multi_solver.h)
    if (args.has("weights"))
      throw Error("train: --weights is for single-net solvers; " + path + " trains `player`s (resume with --snapshot)");
    MultiSolver multi(param, path, opt);
    if (args.has("snapshot")) multi.restore(args.get("snapshot"));
    Solver::Outcome outcome = multi.solve();
    if (outcome != Solver::Outcome::diverged) return 0;
    std::fprintf(stderr, "mmfuse: error: %s\n", multi.message().c_str());
    return 3;
  }
  Solver solver(param, path, opt);
  if (args.has("snapshot")) solver.restore(args.get("snapshot"));
  if (args.has("weights")) solver.load_weights(args.get("weights"));
  switch (solver.solve()) {
    case Solver::Outcome::finished:
      return 0;
    case Solver::Outcome::interrupted:
      return 0;
    case Solver::Outcome::diverged:
      std::fprintf(stderr, "mmfuse: error: %s\n", solver.message().c_str());
      return 3;
  }
  return 1;
}

CommandRegistrar registrar(
    {"train", "train a net from a solver prototxt",
     "mmfuse train --solver S [--weights W | --snapshot S] [--gpu N] [--precision fp32|tf32] [--max-iter N]\n"
     "             [--conv-search heuristics|benchmark] [--nondeterministic]\n"
     "  --solver S      the solver prototxt (net paths not found from the working directory are\n"
     "                  taken relative to the solver's folder)\n"
     "  --weights W     fine-tune: copy parameters by <layer>.<param> name from a .weights file and\n"
     "                  print the table of loaded, missing and shape-mismatched parameters\n"
     "  --snapshot S    resume from a .solverstate (bit-exact on CPU)\n"
     "  --gpu N         train on CUDA device N (default: solver_mode / device_id; CPU when none is visible)\n"
     "  --precision P   fp32 or tf32 (default: the solver's `precision`)\n"
     "  --max-iter N    override max_iter\n" +
         std::string(kConvSearchUsage) +
     "  SIGINT snapshots and stops (exit 0); SIGHUP snapshots and continues. A NaN/Inf loss or\n"
     "  gradient stops without a snapshot (exit 3): snapshots are written only from weights that\n"
     "  gave a finite loss and finite gradients. Writes <prefix>_iter_N.{weights,solverstate},\n"
     "  <prefix>_metrics.jsonl and <prefix>_curve.svg. A solver with `player`s (several nets, e.g. a GAN's\n"
     "  generator and discriminator, docs/translation.md) writes one <prefix>_iter_N.<player>.weights each.",
     train});

}  // namespace
}  // namespace mmfuse::tools
