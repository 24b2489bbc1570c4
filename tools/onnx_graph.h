// `mmfuse export-onnx`'s pieces (docs/interop.md, "ONNX export"): an ONNX graph under
// construction (core/proto/onnx.proto, opset 13) and the table of layer exporters, one function
// per layer type (tools/onnx_layers.cpp), which tools/export_onnx.cpp runs over a Net.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/layer.h"
#include "core/proto/onnx.pb.h"

namespace mmfuse::tools::onnx_export {

inline constexpr int kOpset = 13;
inline constexpr int kIrVersion = 7;  // the IR version of opset 13 (ONNX 1.8)

// An attribute of a node: Attr::i("axis", 1), Attr::ints("pads", {...}), ...
struct Attr {
  onnx::AttributeProto proto;
  static Attr i(const std::string& name, int64_t v);
  static Attr f(const std::string& name, float v);
  static Attr s(const std::string& name, const std::string& v);
  static Attr ints(const std::string& name, const std::vector<int64_t>& v);
};

// The graph being built: nodes in topological order, initializers (weights and constants), and
// unique value names.
class Graph {
 public:
  explicit Graph(onnx::GraphProto& proto) : proto_(proto) {}
  // A value name not used yet, from `hint` ("hint", "hint_1", ...).
  std::string fresh(const std::string& hint);
  // Reserves `name` (a blob's final name) so that fresh() never hands it out.
  void reserve(const std::string& name) { used_[name] = 1; }
  // A node `op` reading `inputs` ("" for an absent optional input) and writing `outputs`.
  void node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
            std::vector<Attr> attrs = {});
  // The same with one output named fresh(hint); returns its name.
  std::string op(const std::string& op, const std::vector<std::string>& inputs, const std::string& hint,
                 std::vector<Attr> attrs = {});
  // The parameter `name` (float32 `values`, any device) as an initializer of that name and the
  // parameter's shape, marked "mmfuse parameter" in its doc_string; returns the value to read,
  // a Reshape of it to `shape` when that is given and differs.
  std::string weight(const std::string& name, const Tensor& values, const Shape& shape = {});
  std::string floats(const std::string& hint, const std::vector<float>& values, const Shape& shape);
  // An int64 1-d initializer (Reshape shapes, Slice bounds, Pad pads, Resize sizes).
  std::string ints(const std::string& hint, const std::vector<int64_t>& values);

  // Common composites.
  // x[..., begin:end along axis, ...]
  std::string slice(const std::string& x, int64_t axis, int64_t begin, int64_t end, const std::string& hint);
  std::string reshape(const std::string& x, const Shape& shape, const std::string& hint);

 private:
  onnx::GraphProto& proto_;
  std::map<std::string, int> used_;
  std::map<std::string, Shape> initializer_shapes_;  // the parameters weight() wrote
};

// What an exporter sees of one layer: its ONNX input values and shapes, the names and shapes its
// tops must have, the graph to add nodes to.
struct LayerExport {
  const Layer& layer;
  std::vector<std::string> bottoms;  // ONNX value names of the bottoms' current values
  std::vector<Shape> bottom_shapes;
  std::vector<std::string> tops;  // the value names to write, one per top
  std::vector<Shape> top_shapes;
  Graph& g;
  std::string location;  // "file:line" of the layer in its prototxt, when known

  const proto::LayerParameter& param() const { return layer.layer_param(); }
  // Parameter i as an initializer named "<layer>.<param>", reshaped to `shape` when given.
  std::string weight(size_t i, const Shape& shape = {}) const;
  // A node writing top 0.
  void to_top(const std::string& op, const std::vector<std::string>& inputs, std::vector<Attr> attrs = {}) const {
    g.node(op, inputs, {tops.at(0)}, std::move(attrs));
  }
  // "file:line: layer 'x' (T)", the start of the exporter's messages.
  std::string where() const { return (location.empty() ? "" : location + ": ") + layer.describe(); }
  // "export-onnx: file:line: layer 'x' (T) (bottoms [..]): <why>" as an Error: what has no ONNX form.
  [[noreturn]] void unsupported(const std::string& why) const;
};

using Exporter = std::function<void(LayerExport&)>;
// The exporters by layer type (tools/onnx_layers.cpp).
const std::map<std::string, Exporter>& exporters();

// What a layer becomes: nodes through exporters() (exported); graph inputs, its tops (source:
// Input and the data layers); nothing (dropped: losses, metrics, Silence).
enum class LayerRole { exported, source, dropped };
LayerRole layer_role(const Layer& layer);

}  // namespace mmfuse::tools::onnx_export
