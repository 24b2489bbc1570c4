// mmfuse export-onnx --model M [--weights W] OUT.onnx
//
// The TEST-phase net of M as an ONNX model (opset 13, standard operators only): each layer
// through its exporter (tools/onnx_layers.cpp), data and Input layers' tops as graph inputs,
// losses, metrics and Silence left out, the tops nothing reads as graph outputs. Blobs keep their
// names: a graph input or output is named like its blob; a blob written in place several times
// has its earlier values named "<blob>@<layer>". Shapes are the prototxt's, batch included.
#include <cstdio>
#include <set>

#include "core/prototxt.h"
#include "core/snapshot.h"
#include "tools/command.h"
#include "tools/onnx_graph.h"

namespace mmfuse::tools {
namespace {

namespace ox = onnx_export;

void set_tensor_type(onnx::ValueInfoProto& v, const std::string& name, const Shape& shape) {
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  auto* s = t->mutable_shape();
  for (int64_t d : shape) s->add_dim()->set_dim_value(d);
}

struct ExportSummary {
  std::vector<std::string> inputs, outputs, dropped;
  int nodes = 0, initializers = 0;
  int64_t values = 0;
};

ExportSummary export_net(const Net& net, const std::string& source, onnx::ModelProto& model) {
  model.set_ir_version(ox::kIrVersion);
  model.set_producer_name("mmfuse");
  model.set_doc_string("mmfuse export-onnx of " + source +
                       " (TEST phase; modality-stacked blobs kept stacked: modality m is rows [m*N, (m+1)*N))");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(ox::kOpset);
  onnx::GraphProto& graph = *model.mutable_graph();
  graph.set_name(net.name().empty() ? "mmfuse" : net.name());
  ox::Graph g(graph);

  const auto& layers = net.layers();
  std::vector<ox::LayerRole> roles;
  for (const auto& l : layers) roles.push_back(ox::layer_role(*l));
  // A ModalityTile whose tiled blob only losses read (the labels of stacked logits) goes with them.
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < layers.size(); ++i) {
      if (roles[i] != ox::LayerRole::exported || layers[i]->type() != "ModalityTile") continue;
      bool read_exported = false, read_dropped = false;
      for (size_t j = i + 1; j < layers.size(); ++j)
        for (const auto& b : net.bottom_names(j))
          if (b == net.top_names(i)[0]) (roles[j] == ox::LayerRole::dropped ? read_dropped : read_exported) = true;
      if (read_dropped && !read_exported) roles[i] = ox::LayerRole::dropped, changed = true;
    }
  }

  std::map<std::string, int> writes_left;  // exported writes of each blob still to come
  for (size_t i = 0; i < layers.size(); ++i)
    if (roles[i] == ox::LayerRole::exported)
      for (const auto& t : net.top_names(i)) ++writes_left[t];
  std::vector<std::string> fed;  // blobs a data or Input layer feeds, in order
  for (size_t i = 0; i < layers.size(); ++i)
    if (roles[i] == ox::LayerRole::source)
      for (const auto& t : net.top_names(i)) fed.push_back(t);
  std::set<std::string> sources(fed.begin(), fed.end());
  for (const auto& [blob, n] : writes_left)
    if (!sources.count(blob)) g.reserve(blob);
  for (const auto& s : sources) g.reserve(s);

  std::map<std::string, std::string> current;  // blob -> the name of its current ONNX value
  std::vector<std::string> produced;           // blobs in order of their exported values
  ExportSummary summary;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& layer = *layers[i];
    if (roles[i] == ox::LayerRole::dropped) {
      summary.dropped.push_back(layer.name() + " (" + layer.type() + ")");
      continue;
    }
    if (roles[i] == ox::LayerRole::source) {
      for (const auto& t : net.top_names(i)) current[t] = t;
      continue;
    }
    ox::LayerExport e{layer, {}, {}, {}, {}, g, layer_location(net.net_param(), layer.layer_param())};
    auto it = ox::exporters().find(layer.type());
    if (it == ox::exporters().end()) {
      std::string known;
      for (const auto& [type, fn] : ox::exporters()) known += (known.empty() ? "" : ", ") + type;
      throw Error("export-onnx: " + e.where() + ": layer type '" + layer.type() +
                  "' has no ONNX export (exported types: " + known + ")");
    }
    for (const auto& b : net.bottom_names(i)) {
      auto v = current.find(b);
      if (v == current.end())
        throw Error("export-onnx: " + e.where() + " reads blob '" + b +
                    "', which only a left-out layer (a loss or metric) writes");
      e.bottoms.push_back(v->second);
      e.bottom_shapes.push_back(net.blob_shape(b));
    }
    for (const auto& t : net.top_names(i)) {
      bool last = --writes_left[t] == 0 && !sources.count(t);
      e.tops.push_back(last ? t : g.fresh(t + "@" + layer.name()));
      e.top_shapes.push_back(net.blob_shape(t));
    }
    it->second(e);
    for (size_t k = 0; k < e.tops.size(); ++k) {
      const std::string& t = net.top_names(i)[k];
      current[t] = e.tops[k];
      produced.push_back(t);
    }
  }
  // Inputs: the fed blobs some node reads (a label that only losses or the shape of an Interp
  // read is none). Outputs: the exported blobs' final values no node reads, in order.
  std::set<std::string> read, seen;
  for (const auto& n : graph.node())
    for (const auto& in : n.input()) read.insert(in);
  for (const auto& blob : fed)
    if (read.count(blob) && seen.insert(blob).second) {
      set_tensor_type(*graph.add_input(), blob, net.blob_shape(blob));
      summary.inputs.push_back(blob + " " + shape_str(net.blob_shape(blob)));
    }
  for (const auto& blob : produced) {
    const std::string& v = current.at(blob);
    if (read.count(v) || !seen.insert(v).second) continue;
    set_tensor_type(*graph.add_output(), v, net.blob_shape(blob));
    summary.outputs.push_back(v + " " + shape_str(net.blob_shape(blob)));
  }
  MMF_CHECK(graph.output_size() > 0, Error, "export-onnx: ", source,
            " has no output once its losses and metrics are left out");
  summary.nodes = graph.node_size();
  summary.initializers = graph.initializer_size();
  for (const auto& t : graph.initializer()) {
    int64_t n = 1;
    for (int64_t d : t.dims()) n *= d;
    summary.values += n;
  }
  return summary;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none" : out;
}

int export_onnx(const std::vector<std::string>& argv) {
  Args args("export-onnx", argv, {"model", "weights"});
  if (!args.has("model") || args.positional().size() != 1)
    throw Error("export-onnx: expected --model M [--weights W] OUT.onnx (see `mmfuse help export-onnx`)");
  std::string path = args.get("model"), out = args.positional()[0];
  Net net(read_net(path), proto::TEST);
  if (args.has("weights")) load_weights(net, args.get("weights"), /*strict=*/true);
  else std::fprintf(stderr, "mmfuse: note: no --weights: exporting the initial (seed 0) parameters\n");
  onnx::ModelProto model;
  ExportSummary s = export_net(net, path, model);
  write_binary_atomic(out, model);
  std::printf("Wrote %s: %d nodes (opset %d), %d initializers (%lld values)\n  inputs: %s\n  outputs: %s\n"
              "  left out: %s\n",
              out.c_str(), s.nodes, ox::kOpset, s.initializers, static_cast<long long>(s.values),
              joined(s.inputs).c_str(), joined(s.outputs).c_str(), joined(s.dropped).c_str());
  return 0;
}

CommandRegistrar registrar(
    {"export-onnx", "write a model (TEST phase) as an ONNX file",
     "mmfuse export-onnx --model M [--weights W] OUT.onnx\n"
     "  Writes M's TEST-phase net with W's parameters (loaded strictly) as ONNX (opset 13, standard\n"
     "  operators only; the fusion layers become Slice/Concat/Pad/ReduceMean/Gemm/Sigmoid/Mul graphs).\n"
     "  Data and Input layers' tops become the graph's inputs, float32 with the prototxt's shapes\n"
     "  (batch included; modality-stacked blobs stay stacked [M*N, ...]); losses, metrics and\n"
     "  Silence are left out; the tops nothing reads are the outputs, named like their blobs.\n"
     "  BatchNorm uses its running statistics, Dropout is the identity (inference).\n"
     "  docs/interop.md lists each layer type's ONNX form.",
     export_onnx});

}  // namespace
}  // namespace mmfuse::tools
