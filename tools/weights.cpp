// mmfuse export-weights W DIR  and  mmfuse import-weights --model M DIR W: a .weights file
// (proto::NetWeights) <-> one DIR/<layer>.<param>.npy per parameter.
#include <cstdio>

#include "core/prototxt.h"
#include "core/snapshot.h"
#include "tools/command.h"

namespace mmfuse::tools {
namespace {

int export_weights(const std::vector<std::string>& argv) {
  Args args("export-weights", argv, {});
  if (args.positional().size() != 2)
    throw Error("export-weights: expected W DIR (see `mmfuse help export-weights`)");
  proto::NetWeights w = read_weights(args.positional()[0]);
  export_npy(w, args.positional()[1]);
  std::printf("Wrote %d parameters to %s\n", w.param_size(), args.positional()[1].c_str());
  return 0;
}

int import_weights(const std::vector<std::string>& argv) {
  Args args("import-weights", argv, {"model"});
  if (!args.has("model") || args.positional().size() != 2)
    throw Error("import-weights: expected --model M DIR W (see `mmfuse help import-weights`)");
  Net net(read_net(args.get("model")), proto::TRAIN);
  proto::NetWeights w = import_npy(net, args.positional()[0]);
  write_binary_atomic(args.positional()[1], w);
  std::printf("Wrote %d parameters to %s\n", w.param_size(), args.positional()[1].c_str());
  return 0;
}

CommandRegistrar export_registrar({"export-weights", "write each parameter of a .weights file as .npy",
                                   "mmfuse export-weights W DIR\n"
                                   "  Writes DIR/<layer>.<param>.npy for every parameter in W (learnable and\n"
                                   "  state such as BatchNorm statistics), float32 (float64 if stored so).",
                                   export_weights});
CommandRegistrar import_registrar({"import-weights", "build a .weights file from .npy files",
                                   "mmfuse import-weights --model M DIR W\n"
                                   "  Reads DIR/<layer>.<param>.npy for every parameter of M's TRAIN net, checks\n"
                                   "  the shapes, and writes W. Names every missing or mis-shaped file.",
                                   import_weights});

}  // namespace
}  // namespace mmfuse::tools
