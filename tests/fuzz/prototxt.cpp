// Fuzzes the prototxt readers (core/prototxt.h) and, for a net that parses, building it
// (core/net.h: layer creation, arity and shape inference, parameter fillers) in both phases,
// then a forward and backward pass on zero inputs when the net is small.
//
// Left out, to keep one input cheap: nets with a data layer (they read datasets from disk or
// start generator threads; their file readers have their own fuzzers) and nets of more than
// kMaxLayers layers. A legitimately huge parameter is no finding: the fuzz runs set ASan's
// max_allocation_size_mb with allocator_may_return_null, so that tensor memory (aligned_alloc)
// fails as the framework's Error ("out of host memory") instead.
#include <string>

#include "core/net.h"
#include "core/prototxt.h"
#include "tests/fuzz/fuzz.h"

namespace {

using namespace mmfuse;

constexpr int kMaxLayers = 32;
constexpr double kForwardElements = 1 << 18;  // all blobs together

bool buildable(const proto::NetParameter& net) {
  if (net.layer_size() > kMaxLayers) return false;
  for (const auto& layer : net.layer())
    if (layer.type().find("Data") != std::string::npos) return false;
  return true;
}

double total_elements(const Net& net) {
  double total = 0;
  for (const auto& [name, shape] : net.blob_shapes()) {
    double n = 1;
    for (int64_t d : shape) n *= static_cast<double>(d);
    total += n;
  }
  return total;
}

void build_and_run(const proto::NetParameter& param, proto::Phase phase) {
  Net net(param, phase, Device::cpu(), /*seed=*/1);
  (void)net.summary();
  if (total_elements(net) > kForwardElements) return;
  std::map<std::string, Tensor> inputs;
  for (const auto& [name, shape] : net.inputs()) inputs[name] = Tensor::zeros(shape);
  net.forward(inputs);
  Tensor loss = net.loss();
  if (loss.defined() && loss.requires_grad()) loss.backward();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = fuzz::text_of(data, size);
  fuzz::expect_ok_or_error([&] { read_solver_text(text, "fuzz_solver.prototxt"); });
  proto::NetParameter net;
  if (!fuzz::expect_ok_or_error([&] { net = read_net_text(text, "fuzz.prototxt"); })) return 0;
  if (!buildable(net)) return 0;
  for (proto::Phase phase : {proto::TRAIN, proto::TEST})
    fuzz::expect_ok_or_error([&] { build_and_run(net, phase); });
  return 0;
}
