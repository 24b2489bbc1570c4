#include "core/autograd.h"

#include <algorithm>
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

// existing + incoming; in place when the engine holds the only reference to existing (a
// gradient also routed elsewhere, kept by a hook or viewed is left alone).
Tensor accumulate(Tensor existing, const Tensor& incoming) {
  if (!existing.defined()) return incoming;
  return accumulate_gradient(std::move(existing), incoming);
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

namespace {
// What the engine keeps per node during one backward(): the edges still to deliver a gradient
// into it, and the gradients summed so far (one slot per output of its forward op).
struct Pending {
  int dependencies = 0;
  TensorList buffer;
};
thread_local size_t g_graph_size_hint = 64;  // the node count of this thread's last backward
}  // namespace

void backward(const TensorList& roots, const TensorList& grads, bool retain_graph) {
  MMF_CHECK(roots.size() == grads.size(), Error, "backward: ", roots.size(), " roots but ", grads.size(),
            " gradients");
  NoGradGuard no_grad;  // backward closures compute with ops that must not record

  // The root nodes, their gradients checked (undefined: ones for a scalar root).
  std::vector<std::shared_ptr<Node>> root_nodes;  // keep the graph alive; nodes below are held by edges
  std::vector<std::pair<Edge, Tensor>> seeds;
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
    root_nodes.push_back(e.node);
    seeds.emplace_back(std::move(e), std::move(g));
  }

  // Every reachable node, with the number of edges that lead into it: one table for the whole
  // backward (a node's entry is found once per edge), sized from the last graph.
  std::unordered_map<Node*, Pending> pending;
  pending.reserve(g_graph_size_hint);
  {
    std::vector<Node*> stack;
    for (auto& n : root_nodes)
      if (pending.try_emplace(n.get()).second) stack.push_back(n.get());
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Edge& e : n->next_edges) {
        if (!e.node) continue;
        auto [it, inserted] = pending.try_emplace(e.node.get());
        ++it->second.dependencies;
        if (inserted) stack.push_back(e.node.get());
      }
    }
  }
  g_graph_size_hint = std::max<size_t>(64, pending.size());
  for (auto& [e, g] : seeds) {
    TensorList& buf = pending.at(e.node.get()).buffer;
    buf.resize(e.node->outputs.size());
    buf[e.input_nr] = accumulate(std::move(buf[e.input_nr]), g);
  }

  // Run nodes whose gradients are complete, latest-created first (deterministic order).
  auto later_first = [](const Node* a, const Node* b) { return a->sequence_nr < b->sequence_nr; };
  std::priority_queue<Node*, std::vector<Node*>, decltype(later_first)> ready(later_first);
  for (auto& n : root_nodes) {
    Pending& p = pending.at(n.get());
    if (p.dependencies == 0) {
      p.dependencies = -1;  // queued (a node given as several roots runs once)
      ready.push(n.get());
    }
  }

  while (!ready.empty()) {
    Node* node = ready.top();
    ready.pop();
    TensorList grad_outputs = std::move(pending.at(node).buffer);
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
      Pending& p = pending.at(e.node.get());
      Tensor& g = grad_inputs[i];
      if (g.defined()) {
        const OutputMeta& m = e.node->outputs[e.input_nr];
        MMF_CHECK(g.shape() == m.shape, Error, node->name, " backward: gradient ", i, " has shape ",
                  shape_str(g.shape()), ", expected ", shape_str(m.shape));
        p.buffer.resize(e.node->outputs.size());
        p.buffer[e.input_nr] = accumulate(std::move(p.buffer[e.input_nr]), g);
        g = Tensor();  // the buffer holds it alone now (an in-place sum may follow)
      }
      if (--p.dependencies == 0) ready.push(e.node.get());
    }
  }
}

}  // namespace mmfuse::autograd
