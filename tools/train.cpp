// [mpirun -np K] mmfuse train --solver S [--weights W | --snapshot S] [--gpu N[,M...]] [--precision fp32|tf32] [--max-iter N]
//              [--conv-search heuristics|benchmark] [--nondeterministic]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "core/distributed.h"
#include "core/prototxt.h"
#include "core/solver.h"
#include "tools/command.h"

namespace mmfuse::tools {
namespace {

// --gpu: one device, or a comma-separated list with one entry per rank on each machine (the
// local rank picks its entry). Without --gpu a data-parallel GPU solver gives local rank k the
// device device_id + k, unless the rank sees one device only (srun --gpus-per-task=1, or
// CUDA_VISIBLE_DEVICES set per rank): then that one.
std::optional<Device> pick_device(const Args& args, const proto::SolverParameter& solver, const dist::World& world) {
  if (!args.has("gpu")) {
    if (world.distributed() && solver.solver_mode() == proto::SolverParameter::GPU)
      return Device::cuda(visible_gpus() == 1 ? 0 : solver.device_id() + world.local_rank());
    return std::nullopt;
  }
  std::vector<int> list;
  std::string text = args.get("gpu");
  for (size_t start = 0; start <= text.size();) {
    size_t comma = std::min(text.find(',', start), text.size());
    std::string item = text.substr(start, comma - start);
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0) throw Error("train: --gpu takes an integer device number or a list N,M,... of them, got '" + text + "'");
    list.push_back(static_cast<int>(v));
    start = comma + 1;
  }
  if (!world.distributed()) {
    if (list.size() > 1)
      throw Error("train: --gpu " + text + " lists " + std::to_string(list.size()) +
                  " devices: one process trains on one; start one per device with mpirun -np " +
                  std::to_string(list.size()) + " (docs/distributed.md)");
    return Device::cuda(list[0]);
  }
  if (list.size() == 1) return Device::cuda(list[0]);
  if (world.local_rank() >= static_cast<int>(list.size()))
    throw Error("train: rank " + std::to_string(world.rank()) + " is local rank " + std::to_string(world.local_rank()) +
                " on its machine, but --gpu " + text + " lists " + std::to_string(list.size()) + " devices");
  return Device::cuda(list[static_cast<size_t>(world.local_rank())]);
}

int train_on(const Args& args, dist::World& world) {
  SolverOptions opt;
  opt.precision = args.get("precision");
  opt.max_iter = args.get_int("max-iter", -1);
  if (args.has("max-iter") && opt.max_iter < 0)
    throw Error("train: --max-iter must be >= 0, got " + args.get("max-iter"));
  std::string path = args.get("solver");
  proto::SolverParameter param = read_solver(path);
  opt.device = pick_device(args, param, world);
  if (param.player_size() > 0 && args.has("weights"))
    throw Error("train: --weights is for single-net solvers; " + path + " trains `player`s (resume with --snapshot)");
  Solver solver(param, path, opt);
  if (args.has("snapshot")) solver.restore(args.get("snapshot"));
  // The solver's own `weights` (Caffe's field) start a run that --weights or --snapshot does not.
  if (args.has("weights"))
    solver.load_weights(args.get("weights"));
  else if (!args.has("snapshot"))
    for (const std::string& w : solver.param().weights()) solver.load_weights(w);
  switch (solver.solve()) {
    case Solver::Outcome::finished:
      return 0;
    case Solver::Outcome::interrupted:
      return 0;
    case Solver::Outcome::diverged:
      // The ranks diverge together (their gradients are averaged; a loss that only one rank
      // sees stops the job from inside the solver): rank 0 says so (a solver with `player`s
      // runs in one process).
      if (world.is_root()) std::fprintf(stderr, "mmfuse: error: %s\n", solver.message().c_str());
      return 3;
  }
  return 1;
}

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
  // Under mpirun / srun with more than one process: join the job (or refuse in a build without
  // MPI). An error on one rank stops them all, naming the rank, instead of leaving the others
  // waiting in a collective.
  dist::World& world = dist::init();
  if (!world.distributed()) return train_on(args, world);
  int code = 1;
  try {
    code = train_on(args, world);
  } catch (const std::exception& e) {
    world.abort(e.what(), 1);
  }
  dist::finalize();
  return code;
}

CommandRegistrar registrar(
    {"train", "train a net from a solver prototxt",
     "mmfuse train --solver S [--weights W | --snapshot S] [--gpu N] [--precision fp32|tf32] [--max-iter N]\n"
     "             [--conv-search heuristics|benchmark] [--nondeterministic]\n"
     "  --solver S      the solver prototxt (net paths not found from the working directory are\n"
     "                  taken relative to the solver's folder)\n"
     "  --weights W     fine-tune: copy parameters by <layer>.<param> name from a .weights file (or\n"
     "                  by layer name from a Caffe .caffemodel) and print the table of loaded,\n"
     "                  missing and shape-mismatched parameters\n"
     "  --snapshot S    resume from a .solverstate (bit-exact on CPU)\n"
     "  --gpu N[,M...]  train on CUDA device N (default: solver_mode / device_id; CPU when none is\n"
     "                  visible); under mpirun/srun a list gives local rank k its k-th device\n"
     "  --precision P   fp32 or tf32 (default: the solver's `precision`)\n"
     "  --max-iter N    override max_iter\n" +
         std::string(kConvSearchUsage) +
     "  Data-parallel: mpirun -np N mmfuse train ... (or srun) trains on N ranks, each reading its\n"
     "  shard of every global batch of N x batch samples (docs/distributed.md).\n"
     "  SIGINT/SIGTERM snapshot and stop (exit 0); SIGHUP snapshots and continues. A NaN/Inf loss or\n"
     "  gradient stops without a snapshot (exit 3): snapshots are written only from weights that\n"
     "  gave a finite loss and finite gradients. Writes <prefix>_iter_N.{weights,solverstate},\n"
     "  <prefix>_metrics.jsonl and <prefix>_curve.svg. A solver with `player`s (several nets, e.g. a GAN's\n"
     "  generator and discriminator, docs/translation.md) writes one <prefix>_iter_N.<player>.weights each.",
     train});

}  // namespace
}  // namespace mmfuse::tools
