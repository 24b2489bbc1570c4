// Caffe's binary files: BlobProto (mean files, .binaryproto) and .caffemodel weights (a binary
// NetParameter, V2 `layer` or V1 `layers`, each layer holding its blobs). A .caffemodel is
// mapped onto a Net by layer name as Caffe's CopyTrainedLayersFrom does: blob i of a layer is
// the layer's parameter i (BatchNorm: mean, variance, scale factor, Caffe's sums divided by
// the factor). The result is an ordinary proto::NetWeights, so that copy_weights and its
// report (core/snapshot.h) serve both formats. Format: core/proto/caffe.proto; docs/interop.md.
#pragma once
#include <string>

#include "core/net.h"
#include "core/proto/caffe.pb.h"

namespace mmfuse {

// A Caffe blob as a CPU tensor (float32; float64 from double_data): its shape, or the legacy
// [num, channels, height, width] when it has none. IOError naming `what` when the value count
// does not fit the shape.
Tensor caffe_blob_to_tensor(const caffe::BlobProto& blob, const std::string& what);
// A .binaryproto file (Caffe's mean file): one BlobProto. IOError naming the path.
Tensor read_caffe_blob(const std::string& path);

// Whether `path` should be read as a .caffemodel: its extension (.caffemodel yes, .weights no),
// or else bytes that parse as a Caffe NetParameter holding layers with blobs and not as
// mmfuse's own weights.
bool looks_like_caffemodel(const std::string& path);

// What a .caffemodel held, mapped onto `net`: one BlobProto per blob, named "<layer>.<param>"
// for the net's parameters (reshaped from Caffe's legacy 4-d shapes where the values fit) and
// "<layer>.blob<i>" for blobs the net has no parameter for (reported unused). `summary` gets a
// line on the file (format, layers, blobs).
proto::NetWeights caffemodel_weights(const Net& net, const std::string& path, std::string* summary = nullptr);
// The same from the file's bytes; `name` stands for the file in messages and the summary.
proto::NetWeights caffemodel_weights_from_bytes(const Net& net, const std::string& bytes, const std::string& name,
                                                std::string* summary = nullptr);

}  // namespace mmfuse
