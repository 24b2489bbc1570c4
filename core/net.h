// Net: the DAG of layers built from a NetParameter, with a table of named blobs.
//
// Construction filters layers by phase/stage/level (Caffe's include/exclude rules), creates
// each layer, checks its arity, infers every blob's shape and fills the parameters from the
// seed; nothing is computed. Names follow Caffe: a top named like its bottom is "in place"
// (the name is rebound to the new tensor; memory is not shared), `param { name: "w" }` shares
// one tensor between layers, and a TEST net built with share_with uses the TRAIN net's tensors
// for parameters of the same "<layer>.<param>" name.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/layer.h"

namespace mmfuse {

class Net {
 public:
  // `dtype` is float32 for training; float64 serves the gradient checks of layers.
  Net(const proto::NetParameter& param, proto::Phase phase, Device device = Device::cpu(), uint64_t seed = 0,
      const Net* share_with = nullptr, DType dtype = DType::f32);
  ~Net();
  Net(const Net&) = delete;
  Net& operator=(const Net&) = delete;

  // Runs every layer. `inputs` feeds the deploy inputs and Input layers by blob name (moved to
  // the net's device). Returns every blob by name (an in-place blob: its last value).
  // `iteration` is the global batch index data layers draw their batch from (see
  // ForwardContext). Hooks, when given, run around each layer (`mmfuse time` times layers,
  // `mmfuse forward` replaces tops to tap their gradients).
  struct Hooks {
    std::function<void(size_t layer)> before;
    std::function<void(size_t layer, TensorList& tops)> after;
  };
  // Checks before the first forward that the blobs of one forward and the parameters fit the
  // device's memory (Error naming the largest top); every input against check_input; a
  // negative `iteration` is refused.
  std::map<std::string, Tensor> forward(const std::map<std::string, Tensor>& inputs = {}, int64_t iteration = 0,
                                        const Hooks* hooks = nullptr);
  // Error unless the net has an input `name` declared with `shape` (naming the net's inputs).
  void check_input(const std::string& name, const Shape& shape) const;
  void check_memory() const;
  // Σ loss_weight · sum(top) over the loss tops of the last forward (a scalar; zero if none).
  Tensor loss() const { return loss_; }
  // A blob of the last forward (throws naming the blob if unknown).
  Tensor blob(const std::string& name) const;
  // The random generator of the forward pass (dropout); a solver snapshots its state.
  Generator& generator() { return forward_gen_; }

  const std::string& name() const { return param_.name(); }
  proto::Phase phase() const { return phase_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  const proto::NetParameter& net_param() const { return param_; }

  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  const Layer* layer(const std::string& name) const;  // null if absent; the last of a repeated name
  // Blob names of each layer's bottoms and tops, by layer index.
  const std::vector<std::string>& bottom_names(size_t layer) const { return bottoms_.at(layer); }
  const std::vector<std::string>& top_names(size_t layer) const { return tops_.at(layer); }
  // Blobs fed from outside (deploy `input:` and Input layers' tops) with their declared shapes.
  const std::vector<std::pair<std::string, Shape>>& inputs() const { return inputs_; }
  // Tops that no later layer consumes (Caffe's net outputs), in order.
  const std::vector<std::string>& output_names() const { return outputs_; }
  // Loss tops with their weights.
  const std::vector<std::pair<std::string, float>>& loss_weights() const { return loss_weights_; }
  // Shapes from setup, by blob name (an in-place blob: its last shape).
  const std::map<std::string, Shape>& blob_shapes() const { return blob_shapes_; }
  const Shape& blob_shape(const std::string& name) const;
  // Every blob name in order of first appearance.
  const std::vector<std::string>& blob_names() const { return blob_order_; }

  // Parameters the solver updates (learnable, each shared tensor once, in layer order).
  std::vector<Param> learnable_params() const;
  // All parameters including state (BN statistics), each shared tensor once: what a snapshot saves.
  std::vector<Param> params() const;
  int64_t num_learnable() const;

  // Each layer, its type, top shapes and parameter count; totals (parameters, activation
  // memory in float32 estimated from the top shapes).
  std::string summary() const;

 private:
  void add_layer(const proto::LayerParameter& lp, LayerContext& ctx, const Net* share_with,
                 std::map<std::string, std::pair<Tensor, std::string>>& shared_by_name);
  std::string where(const proto::LayerParameter& lp) const;
  std::string where_net() const;  // "net 'name' (file)"

  proto::NetParameter param_;
  proto::Phase phase_;
  Device device_;
  DType dtype_;
  Generator init_gen_;
  Generator forward_gen_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::vector<std::string>> bottoms_, tops_;
  std::vector<std::vector<Shape>> top_shapes_;
  std::vector<std::vector<float>> top_loss_weights_;
  std::vector<std::pair<std::string, Shape>> inputs_;
  std::vector<std::string> outputs_;
  std::vector<std::pair<std::string, float>> loss_weights_;
  std::map<std::string, Shape> blob_shapes_;
  std::vector<std::string> blob_order_;
  std::map<std::string, Tensor> blobs_;
  Tensor loss_;
  double activation_bytes_ = 0, largest_top_bytes_ = 0;  // the tops of one forward (setup's estimate)
  std::string largest_top_;
  bool memory_checked_ = false;
};

// Caffe's rule check: does a layer with these include/exclude rules belong to `state`?
bool layer_included(const proto::LayerParameter& layer, const proto::NetState& state);

}  // namespace mmfuse
