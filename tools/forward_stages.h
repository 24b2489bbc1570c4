// The blobs of one `mmfuse forward` run stage by stage, for comparing with a reference.
//
// A blob written by several layers (Caffe's in place: bn1 then relu1 write "conv1") has one
// stage per writer; a deploy `input:` that a layer rewrites has a first stage, the value fed,
// whose writer is called "input". With gradients tapped, every floating top that requires grad
// is wrapped in an identity op (GradTap) whose backward keeps the gradient arriving at that
// stage: the engine stores .grad on leaves only.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/net.h"

namespace mmfuse::tools {

struct BlobStage {
  std::string blob;
  std::string writer;  // the layer that wrote this stage, or "input" for a deploy input's fed value
  Tensor value;
  std::shared_ptr<Tensor> tapped;  // GradTap's gradient; null for a fed input (its leaf .grad())

  // The gradient that reached this stage; undefined if none did.
  Tensor gradient() const { return tapped ? *tapped : value.grad(); }
};

class BlobStages {
 public:
  // `inputs`: the tensors Net::forward will be fed (already on the net's device and dtype, so
  // that the fed leaf is the blob itself).
  BlobStages(const Net& net, const std::map<std::string, Tensor>& inputs, bool tap_gradients);
  // For Net::forward: records each layer's tops as stages (tapping them first).
  Net::Hooks hooks();

  // After the forward: every stage, in the order written.
  const std::vector<BlobStage>& all() const { return stages_; }
  // The last stage a layer wrote of `blob`, or null (a deploy input no layer rewrites).
  const BlobStage* last(const std::string& blob) const;
  // Whether `blob` has several stages (then each is dumped as "<blob>@<writer>").
  bool in_place(const std::string& blob) const;

 private:
  void after_layer(size_t layer, TensorList& tops);

  const Net& net_;
  bool tap_gradients_;
  std::vector<BlobStage> stages_;
  std::map<std::string, int> stage_counts_;  // from the net's structure: writers (+1 for a deploy input)
};

}  // namespace mmfuse::tools
