#include "core/autograd.h"

#include <atomic>
#include <queue>
#include <unordered_map>
#include <utility>

#include "core/ops/elementwise.h"

namespace mmfuse::autograd {

namespace {
thread_local bool g_grad_enabled = true;
thread_local std::string g_scope;
BackwardHook g_backward_hook;
thread_local LeafGradHook g_leaf_grad_hook;
std::atomic<uint64_t> g_sequence{0};

// The node that receives gradients for `t`: its grad_fn, or the accumulator of a leaf.
Edge gradient_edge(const Tensor& t) {
  TensorImpl* impl = t.unsafe_impl();
  if (impl->grad_fn) return {impl->grad_fn, impl->output_nr};
  if (!impl->requires_grad) return {};
  std::shared_ptr<Node> acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<Node>();
    acc->name = "AccumulateGrad";
    acc->sequence_nr = g_sequence++;
    acc->outputs.push_back({t.shape(), t.dtype(), t.device()});
    acc->leaf = t.impl_ptr();
    impl->grad_accumulator = acc;
  }
  return {acc, 0};
}

Tensor accumulate(const Tensor& existing, const Tensor& incoming) {
  if (!existing.defined()) return incoming;
  return add(existing, incoming);  // out of place: gradients may alias each other
}
}  // namespace

const std::string& current_scope() { return g_scope; }
ScopeGuard::ScopeGuard(std::string scope) : previous_(std::move(g_scope)) { g_scope = std::move(scope); }
ScopeGuard::~ScopeGuard() { g_scope = std::move(previous_); }
void set_backward_hook(BackwardHook hook) { g_backward_hook = std::move(hook); }
LeafGradHook set_leaf_grad_hook(LeafGradHook hook) { return std::exchange(g_leaf_grad_hook, std::move(hook)); }

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool enabled) { g_grad_enabled = enabled; }

bool needs_grad(const TensorList& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool needs_grad(std::initializer_list<Tensor> inputs) { return needs_grad(TensorList(inputs)); }

void record(const char* name, const TensorList& inputs, const TensorList& outputs, BackwardFn fn) {
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->scope = g_scope;
  node->sequence_nr = g_sequence++;
  node->next_edges.reserve(inputs.size());
  for (const Tensor& t : inputs) node->next_edges.push_back(t.defined() ? gradient_edge(t) : Edge{});
  node->backward = std::move(fn);
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    node->outputs.push_back({out.shape(), out.dtype(), out.device()});
    MMF_CHECK(out.is_leaf() && !out.unsafe_impl()->requires_grad, Error, name,
              ": output ", i, " already has autograd history");
    out.unsafe_impl()->grad_fn = node;
    out.unsafe_impl()->output_nr = static_cast<uint32_t>(i);
  }
}

void backward(const TensorList& roots, const TensorList& grads, bool retain_graph) {
  MMF_CHECK(roots.size() == grads.size(), Error, "backward: ", roots.size(), " roots but ", grads.size(),
            " gradients");
  NoGradGuard no_grad;  // backward closures compute with ops that must not record

  // Seed the root gradients.
  std::unordered_map<Node*, TensorList> buffers;
  std::vector<std::shared_ptr<Node>> root_nodes;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& root = roots[i];
    MMF_CHECK(root.requires_grad(), Error, "backward: tensor ", root.str(),
              " does not require grad and has no grad_fn");
    Tensor g = grads[i];
    if (!g.defined()) {
      MMF_CHECK(root.numel() == 1, Error, "backward: a gradient is needed for non-scalar output ",
                root.str());
      g = Tensor::ones(root.shape(), root.dtype(), root.device());
    }
    MMF_CHECK(g.shape() == root.shape(), Error, "backward: gradient ", g.str(), " for output ", root.str());
    Edge e = gradient_edge(root);
    TensorList& buf = buffers[e.node.get()];
    buf.resize(e.node->outputs.size());
    buf[e.input_nr] = accumulate(buf[e.input_nr], g);
    root_nodes.push_back(e.node);
  }

  // Count, for every reachable node, how many edges lead into it.
  std::unordered_map<Node*, int> dependencies;
  {
    std::vector<Node*> stack;
    std::unordered_map<Node*, bool> seen;
    for (auto& n : root_nodes)
      if (!seen[n.get()]) { seen[n.get()] = true; stack.push_back(n.get()); }
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Edge& e : n->next_edges) {
        if (!e.node) continue;
        dependencies[e.node.get()]++;
        if (!seen[e.node.get()]) { seen[e.node.get()] = true; stack.push_back(e.node.get()); }
      }
    }
  }

  // Run nodes whose gradients are complete, latest-created first (deterministic order).
  auto later_first = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence_nr < b->sequence_nr;
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(later_first)>
      ready(later_first);
  {
    std::unordered_map<Node*, bool> queued;
    for (auto& n : root_nodes)
      if (dependencies[n.get()] == 0 && !queued[n.get()]) { queued[n.get()] = true; ready.push(n); }
  }

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    TensorList grad_outputs = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    grad_outputs.resize(node->outputs.size());
    for (size_t i = 0; i < grad_outputs.size(); ++i)
      if (!grad_outputs[i].defined()) {
        const OutputMeta& m = node->outputs[i];
        grad_outputs[i] = Tensor::zeros(m.shape, m.dtype, m.device);
      }

    if (auto leaf = node->leaf.lock()) {
      leaf->grad = accumulate(Tensor(leaf->grad), grad_outputs[0]).impl_ptr();
      if (g_leaf_grad_hook) g_leaf_grad_hook(*leaf);
      continue;
    }
    if (node->leaf.expired() && node->name == "AccumulateGrad") continue;  // leaf is gone
    MMF_CHECK(node->backward, Error, "backward through ", node->name,
              " a second time: its saved tensors were released (pass retain_graph to keep them)");
    if (g_backward_hook) g_backward_hook(*node, true);
    TensorList grad_inputs;
    try {
      grad_inputs = node->backward(grad_outputs);
    } catch (const Error& e) {
      if (node->scope.empty()) throw;
      throw Error("layer '" + node->scope + "': backward of " + node->name + ": " + e.what());
    }
    if (g_backward_hook) g_backward_hook(*node, false);
    if (!retain_graph) node->backward = nullptr;  // releases the saved tensors now
    MMF_CHECK(grad_inputs.size() == node->next_edges.size(), Error, node->name, " backward returned ",
              grad_inputs.size(), " gradients for ", node->next_edges.size(), " inputs");

    for (size_t i = 0; i < grad_inputs.size(); ++i) {
      const Edge& e = node->next_edges[i];
      if (!e.node) continue;
      const Tensor& g = grad_inputs[i];
      if (g.defined()) {
        const OutputMeta& m = e.node->outputs[e.input_nr];
        MMF_CHECK(g.shape() == m.shape, Error, node->name, " backward: gradient ", i, " has shape ",
                  shape_str(g.shape()), ", expected ", shape_str(m.shape));
        TensorList& buf = buffers[e.node.get()];
        buf.resize(e.node->outputs.size());
        buf[e.input_nr] = accumulate(buf[e.input_nr], g);
      }
      if (--dependencies[e.node.get()] == 0) ready.push(e.node);
    }
  }
}

}  // namespace mmfuse::autograd
