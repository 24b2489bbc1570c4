// mmfuse forward --model M [--weights W] --input BLOB=x.npy ... --dump DIR [--backward] [--gpu N] [--phase test|train]
//
// Writes every blob as DIR/<blob>.npy (an in-place blob: its last value). With --backward,
// backpropagates the net's loss and writes DIR/<blob>.grad.npy for every blob that received a
// gradient and DIR/<layer>.<param>.grad.npy for every parameter. Blob gradients are tapped by
// wrapping each layer's tops in an identity op whose backward keeps the incoming gradient (the
// engine only stores .grad on leaves); floating inputs are made leaves that require grad.
// '/' in blob names becomes '_' in file names.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/npy.h"
#include "core/ops.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "core/solver.h"
#include "tools/command.h"

namespace mmfuse::tools {

namespace fs = std::filesystem;

int forward_command(const std::vector<std::string>& argv) {
  Args args("forward", argv, {"model", "weights", "input", "dump", "gpu", "phase"}, {"backward"});
  if (!args.positional().empty())
    throw Error("forward: unexpected argument '" + args.positional()[0] + "' (see `mmfuse help forward`)");
  if (!args.has("model") || !args.has("dump"))
    throw Error("forward: --model M and --dump DIR are required (see `mmfuse help forward`)");
  std::string phase_name = args.get("phase", "test");
  if (phase_name != "train" && phase_name != "test") throw Error("forward: --phase must be train or test");
  bool backward = args.has("backward");
  Device device = args.has("gpu") ? Device::cuda(args.get_int("gpu", 0)) : Device::cpu();
  Net net(read_net(args.get("model")), phase_name == "train" ? proto::TRAIN : proto::TEST, device);
  if (args.has("weights")) load_weights(net, args.get("weights"), /*strict=*/true);

  std::map<std::string, Tensor> inputs;
  for (const auto& spec : args.get_all("input")) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("forward: --input expects BLOB=file.npy, got '" + spec + "'");
    std::string name = spec.substr(0, eq);
    if (inputs.count(name)) throw Error("forward: --input " + spec + ": blob '" + name + "' is given twice");
    Tensor t = load_npy(spec.substr(eq + 1));
    try {
      net.check_input(name, t.shape());
    } catch (const Error& e) {
      throw Error("forward: --input " + spec + ": " + e.what());
    }
    if (backward && is_floating(t.dtype())) t.set_requires_grad();
    inputs[name] = t;
  }
  auto file = [&](const std::string& name, const std::string& ext) {
    std::string safe = name;
    for (char& c : safe)
      if (c == '/') c = '_';
    return (fs::path(args.get("dump")) / (safe + ext)).string();
  };

  std::map<std::string, std::shared_ptr<Tensor>> taps;
  auto tap = [&](size_t i, TensorList& tops) {
    if (!backward) return;
    for (size_t t = 0; t < tops.size(); ++t) {
      const std::string& name = net.top_names(i)[t];
      if (!tops[t].requires_grad()) {
        taps.erase(name);
        continue;
      }
      auto slot = std::make_shared<Tensor>();
      Tensor y = tops[t].detach();
      autograd::record("GradTap", {tops[t]}, {y}, [slot](const TensorList& g) -> TensorList {
        *slot = g[0];
        return {g[0]};
      });
      tops[t] = y;
      taps[name] = slot;
    }
  };
  Tensor loss;
  std::map<std::string, Tensor> blobs;
  {
    std::unique_ptr<autograd::NoGradGuard> no_grad;
    if (!backward) no_grad = std::make_unique<autograd::NoGradGuard>();
    Net::Hooks hooks{nullptr, tap};
    try {
      blobs = net.forward(inputs, 0, &hooks);
    } catch (const Error& e) {
      // An integer array where the net computes in floating point fails layers later.
      std::string note;
      for (const auto& spec : args.get_all("input")) {
        std::string name = spec.substr(0, spec.find('='));
        if (!is_floating(inputs.at(name).dtype()))
          note += "\n  note: --input " + spec + " is " + dtype_name(inputs.at(name).dtype());
      }
      if (note.empty()) throw;
      throw Error(e.what() + note);
    }
    loss = net.loss();
  }
  size_t grads = 0;
  if (backward) {
    if (net.loss_weights().empty())
      throw Error("forward --backward: the net has no loss output in the " + phase_name + " phase" +
                  (phase_name == "test" ? " (try --phase train)" : ""));
    if (!loss.requires_grad()) throw Error("forward --backward: the loss does not depend on anything learnable");
    loss.backward();
  }
  // The folder is made once everything ran: a failed run leaves nothing behind.
  std::error_code ec;
  fs::create_directories(args.get("dump"), ec);
  if (ec) throw IOError(args.get("dump") + ": cannot create the folder (" + ec.message() + ")");
  for (const auto& [name, t] : blobs) save_npy(file(name, ".npy"), t);
  if (backward) {
    for (const auto& [name, slot] : taps)
      if (slot->defined()) save_npy(file(name, ".grad.npy"), *slot), ++grads;
    for (const auto& [name, t] : inputs)
      if (t.grad().defined() && !taps.count(name)) save_npy(file(name, ".grad.npy"), t.grad()), ++grads;
    for (const Param& p : net.params())
      if (p.value.grad().defined()) save_npy(file(p.name, ".grad.npy"), p.value.grad()), ++grads;
  }
  std::printf("Wrote %zu blobs%s to %s\n", blobs.size(),
              backward ? (" and " + std::to_string(grads) + " gradients").c_str() : "", args.get("dump").c_str());
  return 0;
}

namespace {
CommandRegistrar registrar(
    {"forward", "run a model on .npy inputs and dump every blob (and gradient)",
     "mmfuse forward --model M [--weights W] --input BLOB=x.npy ... --dump DIR [--backward] [--gpu N]\n"
     "               [--phase test|train]\n"
     "  Writes DIR/<blob>.npy for every blob (default phase: test). With --backward, also\n"
     "  DIR/<blob>.grad.npy for every blob the loss reaches (inputs included) and\n"
     "  DIR/<layer>.<param>.grad.npy for every parameter.",
     forward_command});
}  // namespace

}  // namespace mmfuse::tools
