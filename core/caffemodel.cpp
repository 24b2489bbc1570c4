#include "core/caffemodel.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/snapshot.h"

namespace mmfuse {
namespace {

bool has_legacy_shape(const caffe::BlobProto& b) {
  return !b.has_shape() && (b.has_num() || b.has_channels() || b.has_height() || b.has_width());
}

Shape blob_shape(const caffe::BlobProto& b) {
  if (b.has_shape()) return Shape(b.shape().dim().begin(), b.shape().dim().end());
  if (has_legacy_shape(b)) return {b.num(), b.channels(), b.height(), b.width()};
  return {};
}

// Caffe's Blob::ShapeEquals for a legacy blob: the target's shape, padded with leading 1s to
// four dims, equals [num, channels, height, width].
bool legacy_fits(const Shape& legacy, const Shape& target) {
  if (target.size() > 4) return false;
  Shape padded(4 - target.size(), 1);
  padded.insert(padded.end(), target.begin(), target.end());
  return padded == legacy;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MMF_CHECK(in, IOError, path, ": cannot open (", std::strerror(errno), ")");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Parses a Caffe NetParameter; unknown fields (the layers' *_param, solver-side fields) are
// expected and kept aside by protobuf.
bool parse_net(const std::string& bytes, caffe::NetParameter& net) {
  if (bytes.empty() || !net.ParseFromString(bytes)) return false;
  for (const auto& l : net.layer())
    if (l.blobs_size() > 0) return true;
  for (const auto& l : net.layers())
    if (l.blobs_size() > 0) return true;
  return false;
}

// The net's parameter that Caffe's blob i of `layer` is: Caffe's blob order is the layer's
// parameter order, except BatchNorm, whose learnable gamma/beta (mmfuse's affine) Caffe keeps
// in a Scale layer.
std::string param_for_blob(const Layer& layer, int i) {
  if (layer.type() == "BatchNorm") {
    static const char* kBlobs[] = {"mean", "variance", "scale_factor"};
    return i < 3 ? layer.name() + "." + kBlobs[i] : "";
  }
  return i < static_cast<int>(layer.params().size()) ? layer.params()[i].name : "";
}

// Caffe's CopyTrainedLayersFrom: the first layer of that name (names may repeat in Caffe).
const Layer* first_layer(const Net& net, const std::string& name) {
  for (const auto& l : net.layers())
    if (l->name() == name) return l.get();
  return nullptr;
}

const Param* find_param(const Layer& layer, const std::string& name) {
  for (const Param& p : layer.params())
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace

Tensor caffe_blob_to_tensor(const caffe::BlobProto& blob, const std::string& what) {
  Shape shape = blob_shape(blob);
  int64_t n = 1;
  for (int64_t d : shape) {
    MMF_CHECK(d >= 0, IOError, what, ": negative dimension in shape ", shape_str(shape));
    MMF_CHECK(!__builtin_mul_overflow(n, d, &n), IOError, what, ": shape ", shape_str(shape), " is too large");
  }
  if (blob.double_data_size() > 0) {
    MMF_CHECK(blob.double_data_size() == n, IOError, what, ": ", blob.double_data_size(), " values for shape ",
              shape_str(shape));
    return Tensor::from_vector(std::vector<double>(blob.double_data().begin(), blob.double_data().end()), shape);
  }
  MMF_CHECK(blob.data_size() == n, IOError, what, ": ", blob.data_size(), " values for shape ", shape_str(shape));
  return Tensor::from_vector(std::vector<float>(blob.data().begin(), blob.data().end()), shape);
}

Tensor read_caffe_blob(const std::string& path) {
  caffe::BlobProto blob;
  std::string bytes = read_bytes(path);
  MMF_CHECK(!bytes.empty(), IOError, path, ": empty file (expected a binary BlobProto, Caffe's mean file)");
  MMF_CHECK(blob.ParseFromString(bytes), IOError, path, ": not a binary BlobProto (Caffe's .binaryproto mean file)");
  MMF_CHECK(blob.data_size() > 0 || blob.double_data_size() > 0, IOError, path,
            ": a BlobProto with no values (not a Caffe mean file?)");
  return caffe_blob_to_tensor(blob, path);
}

bool looks_like_caffemodel(const std::string& path) {
  const auto extension = std::filesystem::path(path).extension();
  if (extension == ".caffemodel") return true;
  if (extension == ".weights") return false;  // ours: not read twice
  proto::NetWeights own;
  std::string bytes;
  try {
    bytes = read_bytes(path);
  } catch (const IOError&) {
    return false;  // the reader of our own format reports it
  }
  if (own.ParseFromString(bytes) && own.GetReflection()->GetUnknownFields(own).empty() && own.param_size() > 0)
    return false;
  caffe::NetParameter net;
  return parse_net(bytes, net);
}

proto::NetWeights caffemodel_weights(const Net& net, const std::string& path, std::string* summary) {
  return caffemodel_weights_from_bytes(net, read_bytes(path), path, summary);
}

proto::NetWeights caffemodel_weights_from_bytes(const Net& net, const std::string& bytes, const std::string& path,
                                                std::string* summary) {
  caffe::NetParameter file;
  MMF_CHECK(!bytes.empty(), IOError, path, ": empty file (expected a .caffemodel, Caffe's binary NetParameter)");
  MMF_CHECK(parse_net(bytes, file), IOError, path,
            ": not a .caffemodel (not a binary Caffe NetParameter, or one whose layers hold no blobs: a "
            "prototxt? a solver state?)");

  // V2 `layer` and V1 `layers` entries alike: a name and its blobs.
  struct FileLayer {
    const std::string* name;
    const google::protobuf::RepeatedPtrField<caffe::BlobProto>* blobs;
  };
  std::vector<FileLayer> layers;
  for (const auto& l : file.layer()) layers.push_back({&l.name(), &l.blobs()});
  for (const auto& l : file.layers()) layers.push_back({&l.name(), &l.blobs()});

  // A layer sharing another's parameter (`param { name }`, Caffe's siamese nets) holds its own
  // copy in the file; the net's parameter is the first layer's.
  std::set<std::string> owned;
  for (const Param& p : net.params()) owned.insert(p.name);
  std::vector<std::string> shared;

  proto::NetWeights out;
  out.set_name(file.name());
  int with_blobs = 0, blobs = 0;
  for (const FileLayer& fl : layers) {
    if (fl.blobs->empty()) continue;
    ++with_blobs;
    const Layer* layer = first_layer(net, *fl.name);
    std::vector<int> at(static_cast<size_t>(fl.blobs->size()), -1);  // blob i's place in `out`
    for (int i = 0; i < fl.blobs->size(); ++i) {
      ++blobs;
      const caffe::BlobProto& b = (*fl.blobs)[i];
      const std::string target = layer ? param_for_blob(*layer, i) : "";
      if (!target.empty() && !owned.count(target) && find_param(*layer, target)) {
        shared.push_back(target);
        continue;
      }
      const std::string name = target.empty() ? *fl.name + ".blob" + std::to_string(i) : target;
      Tensor t = caffe_blob_to_tensor(b, path + ": layer '" + *fl.name + "' blob " + std::to_string(i));
      const Param* p = layer && !target.empty() ? find_param(*layer, target) : nullptr;
      // Caffe's legacy 4-d shapes, and its 0-d blobs (a Scale over no axes) where mmfuse keeps [1].
      if (p && t.shape() != p->value.shape() &&
          ((has_legacy_shape(b) && legacy_fits(t.shape(), p->value.shape())) ||
           (t.shape().empty() && p->value.shape() == Shape{1})))
        t = t.reshape(p->value.shape());
      at[static_cast<size_t>(i)] = out.param_size();
      proto::BlobProto* dst = out.add_param();
      dst->set_name(name);
      tensor_to_blob(t, *dst);
    }
    // Caffe's BatchNorm keeps sums: the statistics are blob / scale factor (0 when the factor is 0).
    if (layer && layer->type() == "BatchNorm" && at.size() >= 3 && at[2] >= 0) {
      const proto::BlobProto& factor_blob = out.param(at[2]);
      const double factor = factor_blob.data_size() > 0          ? factor_blob.data(0)
                            : factor_blob.double_data_size() > 0 ? factor_blob.double_data(0)
                                                                 : 1.0;
      const double inverse = factor == 0 ? 0 : 1 / factor;
      for (int k : {at[0], at[1]}) {
        if (k < 0) continue;
        proto::BlobProto* s = out.mutable_param(k);
        for (float& v : *s->mutable_data()) v = static_cast<float>(v * inverse);
        for (double& v : *s->mutable_double_data()) v *= inverse;
      }
    }
  }
  if (summary) {
    *summary = path + ": Caffe .caffemodel" + (file.name().empty() ? "" : " of '" + file.name() + "'") + ", " +
               (file.layers_size() > 0 ? "V1 `layers`" : "V2 `layer`") + " format, " + std::to_string(with_blobs) +
               " layers with " + std::to_string(blobs) + " blobs, matched to the net by layer name";
    if (!shared.empty()) {
      *summary += "; skipped, as the net shares them with an earlier layer's:";
      for (const std::string& s : shared) *summary += " " + s;
    }
  }
  return out;
}

}  // namespace mmfuse
