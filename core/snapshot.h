// Weights on disk: a Net's parameters <-> proto::NetWeights (binary protobuf, one BlobProto
// per parameter named "<layer>.<param>", state such as BN statistics included), fine-tuning
// copies by name with a table of what was loaded, and one .npy file per parameter for Python.
#pragma once
#include <string>
#include <vector>

#include "core/net.h"

namespace mmfuse {

// Tensor <-> BlobProto (float32 in data, float64 in double_data).
void tensor_to_blob(const Tensor& t, proto::BlobProto& blob);
Tensor blob_to_tensor(const proto::BlobProto& blob);  // a CPU tensor

// All parameters of `net` (Net::params(): learnable and state, shared ones once), in layer order.
proto::NetWeights net_weights(const Net& net);
// Written to a temp file, fsynced and renamed (write_binary_atomic).
void save_weights(const Net& net, const std::string& path);
// IOError naming the path for an empty file, another kind of file, a parameter without a name
// or given twice, a value count that does not match its shape.
proto::NetWeights read_weights(const std::string& path);

// What copy_weights did, by "<layer>.<param>" name.
struct CopyReport {
  std::string source;  // a line on a file of another format (a .caffemodel), printed first by table()
  std::vector<std::string> loaded;
  std::vector<std::string> defaulted;  // absent from an older file: set to Param::value_if_absent
  std::vector<std::string> missing;  // in the net, not in the file: left as initialised
  std::vector<std::string> mismatched;  // "name: net [a, b] vs file [c]": left as initialised
  std::vector<std::string> unused;   // in the file, not in the net
  // A table with one line per parameter and a totals line.
  std::string table() const;
};
// Copies every parameter of `weights` whose name and shape match one of the net's (fine-tuning).
// With `strict`, throws IOError unless every net parameter was loaded.
CopyReport copy_weights(Net& net, const proto::NetWeights& weights, bool strict = false);
// read_weights + copy_weights with errors naming the path; also refuses a file of which no
// parameter fits the net. A Caffe .caffemodel (core/caffemodel.h) is read as such and copied
// by layer name, with the same report.
CopyReport load_weights(Net& net, const std::string& path, bool strict = false);

// DIR/<layer>.<param>.npy for each parameter of `weights` (the folder is created).
void export_npy(const proto::NetWeights& weights, const std::string& dir);
// The inverse for the parameters of `net`: reads DIR/<name>.npy for each, checks its shape.
// IOError naming the missing files or the mismatched shapes.
proto::NetWeights import_npy(const Net& net, const std::string& dir);

}  // namespace mmfuse
