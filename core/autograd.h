// The autograd engine. An op that runs with grad mode on and an input that requires grad
// records a Node: the edges to its inputs' producers and a closure that maps the gradients of
// its outputs to the gradients of its inputs (Flashlight's shape of an op). backward() walks
// the graph in reverse topological order, sums gradients where a tensor was used twice, and
// drops each node's closure, and with it the tensors it saved, as soon as the node has run.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mmfuse {
using TensorList = std::vector<Tensor>;
}

namespace mmfuse::autograd {

// grad_outputs has one defined tensor per output of the forward op (the engine fills unused
// outputs with zeros); the result has one entry per input, undefined where no gradient flows.
using BackwardFn = std::function<TensorList(const TensorList& grad_outputs)>;

struct Node;
struct Edge {
  std::shared_ptr<Node> node;  // null: the input needs no gradient
  uint32_t input_nr = 0;       // which gradient slot of `node` this edge feeds
};

struct OutputMeta {
  Shape shape;
  DType dtype;
  Device device;
};

struct Node {
  std::string name;               // the op, for error messages
  uint64_t sequence_nr = 0;       // creation order; later nodes run first
  std::vector<Edge> next_edges;   // one per input of the forward op
  std::vector<OutputMeta> outputs;
  BackwardFn backward;            // empty once run (saved tensors released)
  std::weak_ptr<TensorImpl> leaf; // set for the accumulator of a leaf
  std::string scope;              // the layer that recorded it (see ScopeGuard), for timing and errors
  bool is_accumulator() const { return !leaf.expired() || name == "AccumulateGrad"; }
};

bool grad_enabled();
void set_grad_enabled(bool enabled);

// Inference scope: ops record nothing while it lives.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Names the layer whose ops are being recorded: nodes created while a guard lives carry it
// in Node::scope, so that backward time and backward errors can be attributed to layers.
const std::string& current_scope();
class ScopeGuard {
 public:
  explicit ScopeGuard(std::string scope);
  ~ScopeGuard();
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;

 private:
  std::string previous_;
};

// Called after each node's backward has run (for per-layer timing); null by default.
using BackwardHook = std::function<void(const Node& node, bool before)>;
void set_backward_hook(BackwardHook hook);

// Called when a leaf's gradient is final in the running backward(): right after its
// accumulator, which runs once per backward, after every gradient that flows into the leaf
// (a parameter shared by several layers included) has been summed into leaf->grad. Nothing in
// this backward changes that gradient afterwards. For this thread's backward() only (the
// data-parallel reducer starts its gradient buckets from it, on the thread that talks to MPI);
// null by default, and then it costs one test per leaf. Returns the previous hook.
using LeafGradHook = std::function<void(const TensorImpl& leaf)>;
LeafGradHook set_leaf_grad_hook(LeafGradHook hook);

// True when grad mode is on and any of the tensors requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const TensorList& inputs);

// Records `fn` as the backward of an op named `name` (if needs_grad(inputs)). The outputs
// get the new node as grad_fn. Capture saved tensors as x.detach(), never x itself, so that a
// saved output does not keep its own node alive.
void record(const char* name, const TensorList& inputs, const TensorList& outputs, BackwardFn fn);

// Runs backward from `roots` with the given gradients (undefined: ones for a scalar root).
void backward(const TensorList& roots, const TensorList& grads, bool retain_graph = false);

}  // namespace mmfuse::autograd
