// mmfuse forward --model M [--weights W] --input BLOB=x.npy ... --dump DIR [--backward]
//                [--grad TOP=g.npy ...] [--dtype float32|float64] [--gpu N] [--phase test|train]
//
// Runs a net once on .npy inputs and dumps what a reference implementation is checked against.
// DIR/<blob>.npy holds every blob's final value; a blob several layers write (in place) also
// has each stage as DIR/<blob>@<layer>.npy (tools/forward_stages.h). A backward pass seeds
// with the net's loss (--backward), <top, g> for each --grad TOP=g.npy, or the sum of both, and
// writes DIR/<name>.grad.npy beside every floating blob, stage and input, and
// DIR/<layer>.<param>.grad.npy for every parameter: zeros where no gradient arrived, so a
// missing file is never a question. --dtype float64 computes in double (a float32 weights file
// is converted on loading); a float64 file in a float32 run is cast with a note. '/' in names
// becomes '_' in file names.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/npy.h"
#include "core/ops.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "core/solver.h"
#include "tools/command.h"
#include "tools/forward_stages.h"

namespace mmfuse::tools {

namespace {

namespace fs = std::filesystem;

// "BLOB=file.npy", the value of --input and --grad.
std::pair<std::string, std::string> blob_and_file(const std::string& flag, const std::string& spec) {
  size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error("forward: --" + flag + " expects BLOB=file.npy, got '" + spec + "'");
  return {spec.substr(0, eq), spec.substr(eq + 1)};
}

// A .npy file on the net's device, floating arrays in the net's dtype; a float64 file in a
// float32 run is listed in `narrowed` (it loses precision). Integer arrays keep their dtype.
Tensor load_for(const Net& net, const std::string& what, const std::string& path, std::vector<std::string>& narrowed) {
  Tensor t;
  try {
    t = load_npy(path);
  } catch (const IOError& e) {
    throw IOError("forward: " + what + ": " + e.what());
  }
  if (is_floating(t.dtype()) && t.dtype() != net.dtype()) {
    if (t.dtype() == DType::f64) narrowed.push_back(what);
    t = t.to(net.dtype());
  }
  return t.device() == net.device() ? t : t.to(net.device());
}

// --input: by blob name. Floating ones become leaves requiring grad for a backward pass.
std::map<std::string, Tensor> read_inputs(const Args& args, const Net& net, bool backward,
                                          std::vector<std::string>& narrowed) {
  std::map<std::string, Tensor> inputs;
  for (const auto& spec : args.get_all("input")) {
    auto [name, path] = blob_and_file("input", spec);
    if (inputs.count(name)) throw Error("forward: --input " + spec + ": blob '" + name + "' is given twice");
    Tensor t = load_for(net, "--input " + spec, path, narrowed);
    try {
      net.check_input(name, t.shape());
    } catch (const Error& e) {
      throw Error("forward: --input " + spec + ": " + e.what());
    }
    if (backward && is_floating(t.dtype())) t.set_requires_grad();
    inputs[name] = t;
  }
  return inputs;
}

// An upstream gradient of --grad: the blob's final value is seeded with it.
struct Seed {
  std::string spec;  // "TOP=g.npy", for messages
  Tensor gradient;
};

// --grad: by blob name. Blob names and repeats are checked here, shapes after the forward.
std::map<std::string, Seed> read_seeds(const Args& args, const Net& net, std::vector<std::string>& narrowed) {
  std::map<std::string, Seed> seeds;
  for (const auto& spec : args.get_all("grad")) {
    auto [name, path] = blob_and_file("grad", spec);
    if (!net.blob_shapes().count(name)) {
      std::string hint = did_you_mean(name, net.blob_names());
      const auto& names = net.blob_names();
      if (hint.empty() && !names.empty()) {
        for (size_t i = 0; i < names.size() && i < 16; ++i) hint += (i ? ", " : " (its blobs: ") + names[i];
        hint += names.size() > 16 ? ", ... " + std::to_string(names.size()) + " in all)" : ")";
      }
      throw Error("forward: --grad " + spec + ": the net has no blob '" + name + "'" + hint);
    }
    if (seeds.count(name))
      throw Error("forward: --grad " + spec + ": blob '" + name + "' is given twice (also --grad " +
                  seeds.at(name).spec + ")");
    Tensor g = load_for(net, "--grad " + spec, path, narrowed);
    if (!is_floating(g.dtype()))
      throw Error("forward: --grad " + spec + ": the file holds " + dtype_name(g.dtype()) +
                  " values; a gradient is float32 or float64");
    seeds[name] = {spec, g};
  }
  return seeds;
}

std::map<std::string, Tensor> run_forward(Net& net, BlobStages& stages, const std::map<std::string, Tensor>& inputs,
                                          const Args& args, bool backward) {
  std::unique_ptr<autograd::NoGradGuard> no_grad;
  if (!backward) no_grad = std::make_unique<autograd::NoGradGuard>();
  Net::Hooks hooks = stages.hooks();
  try {
    return net.forward(inputs, 0, &hooks);
  } catch (const Error& e) {
    // An integer array where the net computes in floating point fails layers later.
    std::string note;
    for (const auto& spec : args.get_all("input")) {
      const Tensor& t = inputs.at(spec.substr(0, spec.find('=')));
      if (!is_floating(t.dtype())) note += "\n  note: --input " + spec + " is " + dtype_name(t.dtype());
    }
    if (note.empty()) throw;
    throw Error(e.what() + note);
  }
}

// Backpropagates Σ <top, g> over the --grad seeds, plus the net's loss with --backward.
void run_backward(const Net& net, const std::map<std::string, Tensor>& blobs, const std::map<std::string, Seed>& seeds,
                  bool with_loss) {
  TensorList roots, gradients;
  for (const auto& [name, seed] : seeds) {
    const Tensor& top = blobs.at(name);
    if (seed.gradient.shape() != top.shape())
      throw Error("forward: --grad " + seed.spec + ": the gradient has shape " + shape_str(seed.gradient.shape()) +
                  ", blob '" + name + "' has shape " + shape_str(top.shape()));
    if (!top.requires_grad())
      throw Error("forward: --grad " + seed.spec + ": blob '" + name + "' " + shape_str(top.shape()) + " (" +
                  dtype_name(top.dtype()) +
                  ") does not depend on anything that requires grad (no floating input or learnable parameter)");
    roots.push_back(top);
    gradients.push_back(seed.gradient);
  }
  if (with_loss) {
    std::string phase = net.phase() == proto::TRAIN ? "train" : "test";
    if (net.loss_weights().empty())
      throw Error("forward --backward: the net has no loss output in the " + phase + " phase" +
                  (phase == "test" ? " (try --phase train)" : ""));
    if (!net.loss().requires_grad()) throw Error("forward --backward: the loss does not depend on anything learnable");
    roots.push_back(net.loss());
    gradients.emplace_back();  // ones
  }
  autograd::backward(roots, gradients);
}

struct DumpCounts {
  size_t blobs = 0, stages = 0, gradients = 0, never_reached = 0;
};

// Writes the folder once everything ran, so that a failed run leaves nothing behind.
DumpCounts write_dump(const std::string& dir, const Net& net, const std::map<std::string, Tensor>& blobs,
                      const BlobStages& stages, bool backward) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IOError(dir + ": cannot create the folder (" + ec.message() + ")");
  auto file = [&](std::string name, const std::string& ext) {
    for (char& c : name)
      if (c == '/') c = '_';
    return (fs::path(dir) / (name + ext)).string();
  };
  DumpCounts n;
  auto write_gradient = [&](const std::string& name, const Tensor& value, const Tensor& gradient) {
    if (!backward || !is_floating(value.dtype())) return;
    bool reached = gradient.defined();
    save_npy(file(name, ".grad.npy"), reached ? gradient : Tensor::zeros(value.shape(), value.dtype(), value.device()));
    ++n.gradients;
    if (!reached) ++n.never_reached;
  };
  for (const auto& [name, value] : blobs) {
    save_npy(file(name, ".npy"), value);
    ++n.blobs;
    const BlobStage* last = stages.last(name);  // null: a deploy input, the leaf itself
    write_gradient(name, value, last ? last->gradient() : value.grad());
  }
  for (const BlobStage& stage : stages.all()) {
    if (!stages.in_place(stage.blob)) continue;
    std::string name = stage.blob + "@" + stage.writer;
    save_npy(file(name, ".npy"), stage.value);
    ++n.stages;
    write_gradient(name, stage.value, stage.gradient());
  }
  for (const Param& p : net.params()) write_gradient(p.name, p.value, p.value.grad());
  return n;
}

}  // namespace

int forward_command(const std::vector<std::string>& argv) {
  Args args("forward", argv, {"model", "weights", "input", "grad", "dump", "gpu", "phase", "dtype"}, {"backward"});
  if (!args.positional().empty())
    throw Error("forward: unexpected argument '" + args.positional()[0] + "' (see `mmfuse help forward`)");
  if (!args.has("model") || !args.has("dump"))
    throw Error("forward: --model M and --dump DIR are required (see `mmfuse help forward`)");
  std::string phase_name = args.get("phase", "test");
  if (phase_name != "train" && phase_name != "test") throw Error("forward: --phase must be train or test");
  std::string dtype_flag = args.get("dtype", "float32");
  if (dtype_flag != "float32" && dtype_flag != "float64")
    throw Error("forward: --dtype must be float32 or float64, got '" + dtype_flag + "'");
  DType dtype = dtype_flag == "float64" ? DType::f64 : DType::f32;
  bool backward = args.has("backward") || args.has("grad");  // --grad alone: its gradients only
  Device device = args.has("gpu") ? Device::cuda(args.get_int("gpu", 0)) : Device::cpu();
  Net net(read_net(args.get("model")), phase_name == "train" ? proto::TRAIN : proto::TEST, device, /*seed=*/0,
          /*share_with=*/nullptr, dtype);
  if (args.has("weights")) load_weights(net, args.get("weights"), /*strict=*/true);

  std::vector<std::string> narrowed;
  std::map<std::string, Tensor> inputs = read_inputs(args, net, backward, narrowed);
  std::map<std::string, Seed> seeds = read_seeds(args, net, narrowed);
  if (!narrowed.empty()) {
    std::string files;
    for (const auto& what : narrowed) files += (files.empty() ? "" : ", ") + what;
    std::fprintf(stderr, "mmfuse: note: float64 cast to float32 (--dtype float64 keeps double precision): %s\n",
                 files.c_str());
  }
  BlobStages stages(net, inputs, backward);
  std::map<std::string, Tensor> blobs = run_forward(net, stages, inputs, args, backward);
  if (backward) run_backward(net, blobs, seeds, args.has("backward"));
  DumpCounts n = write_dump(args.get("dump"), net, blobs, stages, backward);

  std::string what = std::to_string(n.blobs) + " blobs";
  if (n.stages) what += ", " + std::to_string(n.stages) + " in-place stages";
  if (backward)
    what += " and " + std::to_string(n.gradients) + " gradients (" + std::to_string(n.never_reached) +
            " never reached: written as zeros)";
  std::printf("Wrote %s to %s\n", what.c_str(), args.get("dump").c_str());
  return 0;
}

namespace {
CommandRegistrar registrar(
    {"forward", "run a model on .npy inputs and dump every blob (and gradient)",
     "mmfuse forward --model M [--weights W] --input BLOB=x.npy ... --dump DIR [--backward]\n"
     "               [--grad TOP=g.npy ...] [--dtype float32|float64] [--gpu N] [--phase test|train]\n"
     "  W is a .weights file or a Caffe .caffemodel; every parameter of M must be in it.\n"
     "  Writes DIR/<blob>.npy for every blob (its final value; default phase: test). A blob that\n"
     "  several layers write in place also gets each stage as DIR/<blob>@<layer>.npy, <layer>\n"
     "  being the layer that wrote it (\"input\" for a deploy input's fed value).\n"
     "  --backward       backpropagate the net's loss\n"
     "  --grad TOP=g.npy seed the backward pass with an upstream gradient for blob TOP's final\n"
     "                   value (repeatable; implies the backward pass; the seed is the sum over\n"
     "                   the given tops of <TOP, g>, plus the loss only with --backward)\n"
     "  With a backward pass, DIR/<name>.grad.npy for every floating blob, stage and input and\n"
     "  DIR/<layer>.<param>.grad.npy for every parameter: zeros where no gradient arrived.\n"
     "  --dtype float64  run the net, its weights, inputs and gradients in double (default\n"
     "                   float32, which casts a float64 .npy with a note)",
     forward_command});
}  // namespace

}  // namespace mmfuse::tools
