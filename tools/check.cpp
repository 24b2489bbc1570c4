// mmfuse check MODEL.prototxt [--phase train|test] [--stage S]... [--level N]: builds the net
// (shape inference and parameter initialisation, no compute) and prints its summary; exits 1
// with the error (file:line, layer, shapes) otherwise.
#include <cstdio>

#include "core/net.h"
#include "core/prototxt.h"
#include "tools/command.h"

namespace mmfuse::tools {
namespace {

int check(const std::vector<std::string>& argv) {
  Args args("check", argv, {"phase", "stage", "level"});
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
                            "  Parses the model, builds the net for the phase (shape inference, no compute)\n"
                            "  and prints each layer, its type, top shapes and parameter count, with totals.\n"
                            "  Exits 1 with file:line and the layer named when the model is wrong.",
                            check});

}  // namespace
}  // namespace mmfuse::tools
