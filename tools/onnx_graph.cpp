// The ONNX graph builder of tools/onnx_graph.h.
#include "tools/onnx_graph.h"

#include <cstring>

#include "base/error.h"

namespace mmfuse::tools::onnx_export {

Attr Attr::i(const std::string& name, int64_t v) {
  Attr a;
  a.proto.set_name(name);
  a.proto.set_type(onnx::AttributeProto::INT);
  a.proto.set_i(v);
  return a;
}
Attr Attr::f(const std::string& name, float v) {
  Attr a;
  a.proto.set_name(name);
  a.proto.set_type(onnx::AttributeProto::FLOAT);
  a.proto.set_f(v);
  return a;
}
Attr Attr::s(const std::string& name, const std::string& v) {
  Attr a;
  a.proto.set_name(name);
  a.proto.set_type(onnx::AttributeProto::STRING);
  a.proto.set_s(v);
  return a;
}
Attr Attr::ints(const std::string& name, const std::vector<int64_t>& v) {
  Attr a;
  a.proto.set_name(name);
  a.proto.set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a.proto.add_ints(x);
  return a;
}

std::string Graph::fresh(const std::string& hint) {
  int& n = used_[hint];
  if (n == 0) {
    n = 1;
    return hint;
  }
  for (;;) {
    std::string name = hint + "_" + std::to_string(n++);
    if (!used_.count(name)) {
      used_[name] = 1;
      return name;
    }
  }
}

void Graph::node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
                 std::vector<Attr> attrs) {
  onnx::NodeProto* n = proto_.add_node();
  n->set_op_type(op);
  n->set_name(fresh(outputs.empty() ? op : outputs[0] + "/" + op));
  for (const auto& in : inputs) n->add_input(in);
  for (const auto& out : outputs) n->add_output(out);
  for (auto& a : attrs) *n->add_attribute() = std::move(a.proto);
}

std::string Graph::op(const std::string& op, const std::vector<std::string>& inputs, const std::string& hint,
                      std::vector<Attr> attrs) {
  std::string out = fresh(hint);
  node(op, inputs, {out}, std::move(attrs));
  return out;
}

namespace {
onnx::TensorProto* add_initializer(onnx::GraphProto& g, const std::string& name, const Shape& shape, int type) {
  onnx::TensorProto* t = g.add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  for (int64_t d : shape) t->add_dims(d);
  return t;
}
}  // namespace

std::string Graph::weight(const std::string& name, const Tensor& values, const Shape& shape) {
  // One initializer per parameter, with the parameter's own name and shape (a parameter shared
  // by several layers once): the graph holds the .weights file's contents. Another shape is a
  // Reshape of it (a private BatchNorm's [M, C] read as [M, 1, C, 1]).
  if (!initializer_shapes_.count(name)) {
    Tensor t = values.to(Device::cpu()).to(DType::f32);
    MMF_CHECK(!used_.count(name), Error, "export-onnx: parameter '", name, "' has the name of another value");
    used_[name] = 1;
    initializer_shapes_[name] = t.shape();
    std::string bytes(t.nbytes(), '\0');
    std::memcpy(bytes.data(), t.data<float>(), t.nbytes());  // raw_data is little-endian, as every host we build for
    onnx::TensorProto* init = add_initializer(proto_, name, t.shape(), onnx::TensorProto::FLOAT);
    init->set_raw_data(std::move(bytes));
    init->set_doc_string("mmfuse parameter");
  }
  const Shape& own = initializer_shapes_.at(name);
  if (shape.empty() || shape == own) return name;
  MMF_CHECK(shape_numel(shape) == shape_numel(own), Error, "export-onnx: parameter ", name, " ", shape_str(own),
            " cannot take shape ", shape_str(shape));
  return reshape(name, shape, name + "_view");
}

std::string Graph::floats(const std::string& hint, const std::vector<float>& values, const Shape& shape) {
  MMF_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), Error, "export-onnx: constant ", hint, ": ",
            values.size(), " values for shape ", shape_str(shape));
  std::string n = fresh(hint);
  onnx::TensorProto* t = add_initializer(proto_, n, shape, onnx::TensorProto::FLOAT);
  for (float v : values) t->add_float_data(v);
  return n;
}

std::string Graph::ints(const std::string& hint, const std::vector<int64_t>& values) {
  std::string n = fresh(hint);
  onnx::TensorProto* t = add_initializer(proto_, n, {static_cast<int64_t>(values.size())}, onnx::TensorProto::INT64);
  for (int64_t v : values) t->add_int64_data(v);
  return n;
}

std::string Graph::slice(const std::string& x, int64_t axis, int64_t begin, int64_t end, const std::string& hint) {
  return op("Slice", {x, ints(hint + "_starts", {begin}), ints(hint + "_ends", {end}), ints(hint + "_axes", {axis})},
            hint);
}

std::string Graph::reshape(const std::string& x, const Shape& shape, const std::string& hint) {
  return op("Reshape", {x, ints(hint + "_shape", shape)}, hint);
}

std::string LayerExport::weight(size_t i, const Shape& shape) const {
  const auto& params = layer.params();
  if (i >= params.size()) unsupported("parameter " + std::to_string(i) + " is missing");
  return g.weight(params[i].name, params[i].value, shape);
}

void LayerExport::unsupported(const std::string& why) const {
  std::string shapes;
  for (const auto& s : bottom_shapes) shapes += (shapes.empty() ? "" : ", ") + shape_str(s);
  throw Error("export-onnx: " + where() + " (bottoms " + shapes + "): " + why);
}

}  // namespace mmfuse::tools::onnx_export
