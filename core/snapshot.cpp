#include "core/snapshot.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/caffemodel.h"
#include "core/npy.h"
#include "core/prototxt.h"

namespace mmfuse {

namespace fs = std::filesystem;

void tensor_to_blob(const Tensor& t, proto::BlobProto& blob) {
  blob.clear_shape();
  blob.clear_data();
  blob.clear_double_data();
  blob.mutable_shape();  // a scalar still records its (empty) shape
  for (int64_t d : t.shape()) blob.mutable_shape()->add_dim(d);
  if (t.dtype() == DType::f64) {
    std::vector<double> v = t.to_vector<double>();
    blob.mutable_double_data()->Assign(v.begin(), v.end());
  } else {
    std::vector<float> v = t.to_vector<float>();
    blob.mutable_data()->Assign(v.begin(), v.end());
  }
}

Tensor blob_to_tensor(const proto::BlobProto& blob) {
  Shape shape(blob.shape().dim().begin(), blob.shape().dim().end());
  int64_t n = shape_numel(shape);
  if (blob.double_data_size() > 0) {
    MMF_CHECK(blob.double_data_size() == n, IOError, "blob '", blob.name(), "': ", blob.double_data_size(),
              " values for shape ", shape_str(shape));
    return Tensor::from_vector(std::vector<double>(blob.double_data().begin(), blob.double_data().end()), shape);
  }
  MMF_CHECK(blob.data_size() == n, IOError, "blob '", blob.name(), "': ", blob.data_size(), " values for shape ",
            shape_str(shape));
  return Tensor::from_vector(std::vector<float>(blob.data().begin(), blob.data().end()), shape);
}

proto::NetWeights net_weights(const Net& net) {
  proto::NetWeights w;
  w.set_name(net.name());
  for (const Param& p : net.params()) {
    proto::BlobProto* b = w.add_param();
    b->set_name(p.name);
    tensor_to_blob(p.value, *b);
  }
  return w;
}

void save_weights(const Net& net, const std::string& path) { write_binary_atomic(path, net_weights(net)); }

proto::NetWeights read_weights(const std::string& path) {
  proto::NetWeights w;
  read_binary(path, w);
  MMF_CHECK(w.param_size() > 0, IOError, path, ": holds no parameters");
  std::set<std::string> names;
  for (const auto& b : w.param()) {
    MMF_CHECK(!b.name().empty(), IOError, path, ": a parameter has no name");
    MMF_CHECK(names.insert(b.name()).second, IOError, path, ": holds parameter '", b.name(), "' twice");
    for (int64_t d : b.shape().dim()) MMF_CHECK(d >= 0, IOError, path, ": parameter '", b.name(), "' has a negative dim");
    int64_t n = shape_numel(Shape(b.shape().dim().begin(), b.shape().dim().end()));
    int64_t have = b.double_data_size() > 0 ? b.double_data_size() : b.data_size();
    MMF_CHECK(have == n, IOError, path, ": parameter '", b.name(), "' holds ", have, " values for shape ",
              shape_str(Shape(b.shape().dim().begin(), b.shape().dim().end())));
  }
  return w;
}

CopyReport load_weights(Net& net, const std::string& path, bool strict) {
  std::string source;
  proto::NetWeights w = looks_like_caffemodel(path) ? caffemodel_weights(net, path, &source) : read_weights(path);
  CopyReport r;
  try {
    r = copy_weights(net, w, strict);
  } catch (const IOError& e) {
    throw IOError(path + ": " + e.what());
  }
  r.source = source;
  MMF_CHECK(!r.loaded.empty() || net.params().empty(), IOError, path, ": none of its ", w.param_size(),
            " parameters fits the net (another net's weights?)\n", r.table());
  return r;
}

CopyReport copy_weights(Net& net, const proto::NetWeights& weights, bool strict) {
  std::map<std::string, const proto::BlobProto*> by_name;
  for (const auto& b : weights.param()) by_name[b.name()] = &b;
  CopyReport r;
  std::set<std::string> used;
  for (const Param& p : net.params()) {
    auto it = by_name.find(p.name);
    if (it == by_name.end()) {
      // A file from before this state existed, holding the layer's other parameters.
      std::string layer = p.name.substr(0, p.name.rfind('.') + 1);
      bool layer_in_file = std::any_of(by_name.begin(), by_name.end(),
                                       [&](const auto& kv) { return kv.first.rfind(layer, 0) == 0; });
      if (!std::isnan(p.value_if_absent) && layer_in_file) {
        autograd::NoGradGuard no_grad;
        p.value.fill_(p.value_if_absent);
        r.defaulted.push_back(p.name);
        continue;
      }
      r.missing.push_back(p.name);
      continue;
    }
    used.insert(p.name);
    Shape shape(it->second->shape().dim().begin(), it->second->shape().dim().end());
    if (shape != p.value.shape()) {
      r.mismatched.push_back(p.name + ": net " + shape_str(p.value.shape()) + " vs file " + shape_str(shape));
      continue;
    }
    Tensor src = blob_to_tensor(*it->second);
    autograd::NoGradGuard no_grad;
    p.value.copy_(src.to(p.value.dtype()).to(p.value.device()));
    r.loaded.push_back(p.name);
  }
  for (const auto& b : weights.param())
    if (!used.count(b.name())) r.unused.push_back(b.name());
  if (strict && (!r.missing.empty() || !r.mismatched.empty()))
    throw IOError("weights do not fit the net:\n" + r.table());
  return r;
}

std::string CopyReport::table() const {
  std::string out = source.empty() ? "" : "  " + source + "\n";
  size_t w = 6;
  for (const auto* list : {&loaded, &defaulted, &missing, &mismatched, &unused})
    for (const auto& n : *list) w = std::max(w, n.find(':') == std::string::npos ? n.size() : n.find(':'));
  auto line = [&](const std::string& status, const std::string& entry) {
    size_t colon = entry.find(':');
    std::string name = colon == std::string::npos ? entry : entry.substr(0, colon);
    std::string detail = colon == std::string::npos ? "" : entry.substr(colon + 2);
    out += "  " + name + std::string(w + 2 - name.size(), ' ') + status + (detail.empty() ? "" : "  " + detail) + "\n";
  };
  for (const auto& n : loaded) line("loaded", n);
  for (const auto& n : defaulted) line("not in the file (an older one): set to its default", n);
  for (const auto& n : missing) line("missing (kept initialised)", n);
  for (const auto& n : mismatched) line("shape mismatch (kept initialised)", n);
  for (const auto& n : unused) line("unused (not in the net)", n);
  out += "  " + std::to_string(loaded.size()) + " loaded, " +
         (defaulted.empty() ? std::string() : std::to_string(defaulted.size()) + " defaulted, ") +
         std::to_string(missing.size()) + " missing, " +
         std::to_string(mismatched.size()) + " shape-mismatched, " + std::to_string(unused.size()) +
         " unused\n";
  return out;
}

void export_npy(const proto::NetWeights& weights, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  MMF_CHECK(!ec, IOError, dir, ": cannot create the folder (", ec.message(), ")");
  for (const auto& b : weights.param()) {
    MMF_CHECK(!b.name().empty() && b.name().find('/') == std::string::npos, IOError,
              "export: a parameter has an unusable name '", b.name(), "'");
    save_npy((fs::path(dir) / (b.name() + ".npy")).string(), blob_to_tensor(b));
  }
}

proto::NetWeights import_npy(const Net& net, const std::string& dir) {
  MMF_CHECK(fs::is_directory(dir), IOError, dir, ": not a folder");
  proto::NetWeights w;
  w.set_name(net.name());
  std::vector<std::string> problems;
  for (const Param& p : net.params()) {
    std::string path = (fs::path(dir) / (p.name + ".npy")).string();
    if (!fs::exists(path)) {
      problems.push_back(path + ": missing (parameter " + p.name + " " + shape_str(p.value.shape()) + ")");
      continue;
    }
    Tensor t = load_npy(path);
    if (t.shape() != p.value.shape()) {
      problems.push_back(path + ": shape " + shape_str(t.shape()) + ", the net's " + p.name + " is " +
                         shape_str(p.value.shape()));
      continue;
    }
    if (t.dtype() != DType::f64 && t.dtype() != DType::f32) t = t.to(DType::f32);
    proto::BlobProto* b = w.add_param();
    b->set_name(p.name);
    tensor_to_blob(t.to(p.value.dtype() == DType::f64 ? DType::f64 : DType::f32), *b);
  }
  if (!problems.empty()) {
    std::string msg = "import: " + std::to_string(problems.size()) + " parameter file(s) do not fit:";
    for (const auto& s : problems) msg += "\n  " + s;
    throw IOError(msg);
  }
  return w;
}

}  // namespace mmfuse
