// The Layer base class and the registry of layer types.
//
// A layer is configured from its LayerParameter, infers its top shapes and creates its
// parameters in setup() (no compute: `mmfuse check` on a large net is instant), and computes
// its tops from ops in forward() (backward is autograd's). Adding a layer is one .cpp file in
// layers/:
//
//   class ReLULayer : public Layer {
//    public:
//     using Layer::Layer;
//     Arity arity() const override { return {1, 1, 1, 1}; }
//     std::vector<Shape> setup(const std::vector<Shape>& b, LayerContext&) override { return {b[0]}; }
//     TensorList forward(const TensorList& b, ForwardContext&) override { return {relu(b[0])}; }
//   };
//   MMF_REGISTER_LAYER(ReLU, ReLULayer)
//
// Parameters are created in setup() with add_param(), named "<layer>.<param>", and read in
// forward() with param(i) (never cached: the Net may replace a tensor by a shared one).
#pragma once
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "core/autograd.h"
#include "core/prototxt.h"
#include "core/random.h"
#include "core/tensor.h"

namespace mmfuse {

struct SegmentationScores;  // core/evaluate.h

struct Param {
  std::string name;       // "<layer>.<param>", e.g. "conv1.weight"
  Tensor value;           // a leaf; requires grad when learnable
  float lr_mult = 1;
  float decay_mult = 1;
  bool learnable = true;  // false: state (BN running statistics) saved in snapshots, not solved
  // State added after files were first written: copy_weights sets this value when a file that
  // holds the layer's other parameters lacks it (NaN: none, the parameter counts as missing).
  double value_if_absent = std::numeric_limits<double>::quiet_NaN();
};

// Memory estimates made before anything is allocated. The bytes a device holds: physical memory
// for the CPU (or the container's cgroup limit when lower), total memory for a CUDA device (0
// when unknown: nothing is refused).
double device_memory_bytes(Device device);
// Bytes of a tensor of `shape` and `dtype`, as a double (an absurd shape does not overflow).
double tensor_bytes(const Shape& shape, DType dtype);
std::string bytes_str(double bytes);  // "1.50 GiB"

// What setup() may use: where parameters live and the generator of their fillers.
struct LayerContext {
  Generator& gen;  // seeded by the solver's seed; fillers draw from it in layer order
  Device device = Device::cpu();
  DType dtype = DType::f32;
  proto::Phase phase = proto::TRAIN;
};

// What forward() may use.
struct ForwardContext {
  proto::Phase phase = proto::TRAIN;
  Device device = Device::cpu();
  Generator* gen = nullptr;  // dropout and other random layers
  // The global batch index: train nets iter * iter_size + k (k the sub-batch of gradient
  // accumulation), test nets 0..test_iter-1 within each test run. The contract for data layers:
  // the batch is a pure function of (the layer's seed, iteration), so that resuming from a
  // snapshot is bit-exact without saving any data-layer state (docs/training.md).
  int64_t iteration = 0;
  // The tensors fed to Net::forward by blob name (Input layers read theirs here).
  const std::map<std::string, Tensor>* inputs = nullptr;
};

class Layer {
 public:
  explicit Layer(const proto::LayerParameter& param);
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  // How many bottoms and tops the type accepts; max -1 means any number.
  struct Arity {
    int min_bottoms = 1, max_bottoms = 1, min_tops = 1, max_tops = 1;
  };
  virtual Arity arity() const { return {}; }
  // Loss layers (Caffe: *Loss types) weigh their first top by 1 unless loss_weight says otherwise.
  virtual bool is_loss() const { return false; }
  // Input layers: their tops are the tensors given to Net::forward by name (Net::inputs()).
  virtual bool is_input() const { return false; }
  // Data layers whose tops carry several modalities: their names in order ("rgb", "depth"),
  // one per top or, when a single floating top is modality-stacked [M*N, ...], one per slice.
  // Empty for everything else. `mmfuse probe` finds the modality inputs through it.
  virtual std::vector<std::string> modality_names() const { return {}; }
  // Figures of the layer's state that every display record of the metrics log carries under
  // "layers": {"<name>": [...]} (ModalityEnsemble: softmax(alpha)); empty: none. `mmfuse probe`
  // plots their path over training.
  virtual std::vector<double> logged_figures() const { return {}; }
  // Metric layers (SegmentationMetric): their tops are counts over a batch (confusion matrices),
  // metric state that the test loop (core/evaluate.h) sums over a whole run rather than
  // averaging, then hands to metric_scores().
  virtual bool sums_metric_state() const { return false; }
  // The scores of top `top` from its counts summed over a run (`shape`: the top's), one row per
  // modality or ensemble; evaluate() names the rows. Only called when sums_metric_state().
  virtual std::vector<SegmentationScores> metric_scores(size_t top, const std::vector<double>& summed,
                                                        const Shape& shape) const;

  // Validates the bottoms, creates the parameters, returns the top shapes. No compute.
  virtual std::vector<Shape> setup(const std::vector<Shape>& bottom_shapes, LayerContext& ctx) = 0;
  // The tops, made of ops.
  virtual TensorList forward(const TensorList& bottoms, ForwardContext& ctx) = 0;

  const std::string& name() const { return param_.name(); }
  const std::string& type() const { return param_.type(); }
  const proto::LayerParameter& layer_param() const { return param_; }
  // "layer 'relu1' (ReLU)": the start of this layer's error messages.
  std::string describe() const;
  // Throws ParseError("layer 'x' (T) takes 1 bottom, got 2") when the counts do not fit.
  void check_arity() const;

  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  const Tensor& param(size_t i) const { return params_.at(i).value; }

 protected:
  // Creates parameter number params().size(), named "<layer>.<short_name>", filled by `filler`
  // (fans as fill() takes them), with lr_mult/decay_mult from the matching `param {}` spec.
  const Tensor& add_param(LayerContext& ctx, const std::string& short_name, const Shape& shape,
                          const proto::FillerParameter& filler, int64_t fan_in, int64_t fan_out,
                          bool learnable = true);
  // Throws ParseError prefixed with describe().
  template <typename... Args>
  [[noreturn]] void fail(Args&&... args) const {
    throw ParseError(describe() + ": " + detail::concat(std::forward<Args>(args)...));
  }
  // Caffe's CanonicalAxisIndex: a possibly negative axis into `ndim` dims, checked.
  int64_t canonical_axis(int64_t axis, int64_t ndim, const char* what = "axis") const;

 private:
  proto::LayerParameter param_;
  std::vector<Param> params_;
};

// ---- registry ----------------------------------------------------------------------------
using LayerFactory = std::function<std::unique_ptr<Layer>(const proto::LayerParameter&)>;
std::map<std::string, LayerFactory>& layer_registry();
std::vector<std::string> layer_types();
// Throws ParseError "unknown type 'Convolutoin'; did you mean 'Convolution'?" for unknown types
// (the Net prefixes the layer and its file line).
std::unique_ptr<Layer> create_layer(const proto::LayerParameter& param);

struct LayerRegistrar {
  LayerRegistrar(const char* type, LayerFactory factory) { layer_registry()[type] = std::move(factory); }
};

}  // namespace mmfuse

// MMF_REGISTER_LAYER(ReLU, ReLULayer): the type name as prototxt spells it, and the class.
#define MMF_REGISTER_LAYER(type, Class)                                             \
  static ::mmfuse::LayerRegistrar mmf_layer_registrar_##type(                       \
      #type, [](const ::mmfuse::proto::LayerParameter& p) -> std::unique_ptr<::mmfuse::Layer> { \
        return std::make_unique<Class>(p);                                          \
      });
