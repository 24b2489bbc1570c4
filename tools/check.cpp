// mmfuse check MODEL.prototxt [--phase train|test] [--stage S]... [--level N]: builds the net
// (shape inference and parameter initialisation, no compute) and prints its summary; exits 1
// with the error (file:line, layer, shapes) otherwise. mmfuse check --solver SOLVER.prototxt
// does the same for a solver: its settings, its train and test nets (each player's), its optimizers.
#include <cstdio>

#include "core/net.h"
#include "core/prototxt.h"
#include "core/solver.h"
#include "tools/command.h"

namespace mmfuse::tools {
namespace {

int check(const std::vector<std::string>& argv) {
  Args args("check", argv, {"phase", "stage", "level", "solver"});
  if (args.has("solver")) {
    if (!args.positional().empty()) throw Error("check: give either MODEL.prototxt or --solver SOLVER.prototxt");
    const std::string path = args.get("solver", "");
    SolverOptions options;
    options.max_iter = 0;
    options.handle_signals = false;
    Solver solver(read_solver(path), path, options);  // every check a training run makes first
    std::string nets;
    size_t tests = 0;
    for (const Player& p : solver.players()) {  // the one net, or each `player`'s
      std::fputs(p.net->summary().c_str(), stdout);
      nets += (nets.empty() ? "" : ", ") + (p.name.empty() ? "train net" : "player " + p.name) + " '" + p.net->name() + "'";
      tests += p.tests.size();
    }
    std::printf("%s: %s solver, %s, %zu test net(s): ok\n", path.c_str(), solver.param().type().c_str(), nets.c_str(),
                tests);
    return 0;
  }
  if (args.positional().size() != 1) throw Error("check: expected one MODEL.prototxt (see `mmfuse help check`)");
  std::string phase_name = args.get("phase", "train");
  proto::Phase phase;
  if (phase_name == "train" || phase_name == "TRAIN")
    phase = proto::TRAIN;
  else if (phase_name == "test" || phase_name == "TEST")
    phase = proto::TEST;
  else
    throw Error("check: --phase must be train or test, got '" + phase_name + "'");
  proto::NetParameter param = read_net(args.positional()[0]);
  for (const auto& s : args.get_all("stage")) param.mutable_state()->add_stage(s);
  if (args.has("level")) param.mutable_state()->set_level(args.get_int("level", 0));
  Net net(param, phase);  // errors reach main, which prints them and exits 1
  std::fputs(net.summary().c_str(), stdout);
  return 0;
}

CommandRegistrar registrar({"check", "validate a model prototxt and print its summary without running it",
                            "mmfuse check MODEL.prototxt [--phase train|test] [--stage NAME]... [--level N]\n"
                            "mmfuse check --solver SOLVER.prototxt\n"
                            "  Parses the model, builds the net for the phase (shape inference, no compute)\n"
                            "  and prints each layer, its type, top shapes and parameter count, with totals.\n"
                            "  Exits 1 with file:line and the layer named when the model is wrong.\n"
                            "  With --solver: checks the solver's settings and builds its train and test nets\n"
                            "  (each `player`'s) and optimizers, as `mmfuse train` does before the first iteration.",
                            check});

}  // namespace
}  // namespace mmfuse::tools
