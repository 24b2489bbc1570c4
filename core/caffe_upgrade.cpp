#include "core/caffe_upgrade.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>

#include "base/error.h"
#include "core/layer.h"
#include "core/prototxt.h"

namespace mmfuse {

namespace pb = google::protobuf;

namespace {

// Once per file and process: a solver reads its net file for the train and the test net.
void note_once(const std::string& file, const std::string& what, const std::string& line) {
  static std::mutex mutex;
  static std::set<std::string> noted;
  std::lock_guard<std::mutex> lock(mutex);
  if (noted.insert(what + "\n" + file).second) std::fprintf(stderr, "%s\n", line.c_str());
}

std::string display(const std::string& file) { return file.empty() ? std::string("<text>") : file; }

}  // namespace

std::string v1_layer_type_name(proto::V1LayerParameter::LayerType type) {
  using V1 = proto::V1LayerParameter;
  // Caffe's UpgradeV1LayerType.
  static const std::map<V1::LayerType, const char*> names = {
      {V1::NONE, ""},
      {V1::ABSVAL, "AbsVal"},
      {V1::ACCURACY, "Accuracy"},
      {V1::ARGMAX, "ArgMax"},
      {V1::BNLL, "BNLL"},
      {V1::CONCAT, "Concat"},
      {V1::CONTRASTIVE_LOSS, "ContrastiveLoss"},
      {V1::CONVOLUTION, "Convolution"},
      {V1::DECONVOLUTION, "Deconvolution"},
      {V1::DATA, "Data"},
      {V1::DROPOUT, "Dropout"},
      {V1::DUMMY_DATA, "DummyData"},
      {V1::EUCLIDEAN_LOSS, "EuclideanLoss"},
      {V1::ELTWISE, "Eltwise"},
      {V1::EXP, "Exp"},
      {V1::FLATTEN, "Flatten"},
      {V1::HDF5_DATA, "HDF5Data"},
      {V1::HDF5_OUTPUT, "HDF5Output"},
      {V1::HINGE_LOSS, "HingeLoss"},
      {V1::IM2COL, "Im2col"},
      {V1::IMAGE_DATA, "ImageData"},
      {V1::INFOGAIN_LOSS, "InfogainLoss"},
      {V1::INNER_PRODUCT, "InnerProduct"},
      {V1::LRN, "LRN"},
      {V1::MEMORY_DATA, "MemoryData"},
      {V1::MULTINOMIAL_LOGISTIC_LOSS, "MultinomialLogisticLoss"},
      {V1::MVN, "MVN"},
      {V1::POOLING, "Pooling"},
      {V1::POWER, "Power"},
      {V1::RELU, "ReLU"},
      {V1::SIGMOID, "Sigmoid"},
      {V1::SIGMOID_CROSS_ENTROPY_LOSS, "SigmoidCrossEntropyLoss"},
      {V1::SILENCE, "Silence"},
      {V1::SOFTMAX, "Softmax"},
      {V1::SOFTMAX_LOSS, "SoftmaxWithLoss"},
      {V1::SPLIT, "Split"},
      {V1::SLICE, "Slice"},
      {V1::TANH, "TanH"},
      {V1::WINDOW_DATA, "WindowData"},
      {V1::THRESHOLD, "Threshold"},
  };
  auto it = names.find(type);
  return it == names.end() ? std::string() : it->second;
}

bool upgrade_v1_net(proto::NetParameter& net, const std::string& file) {
  if (net.layers_size() == 0) return false;
  MMF_CHECK(net.layer_size() == 0, ParseError, display(file),
            ": the net mixes `layer` (current) and `layers` (Caffe's V1) entries; use one format");
  const pb::Descriptor* v1_desc = proto::V1LayerParameter::descriptor();
  const pb::Descriptor* desc = proto::LayerParameter::descriptor();
  for (const proto::V1LayerParameter& v1 : net.layers()) {
    proto::LayerParameter* lp = net.add_layer();
    // Caffe's UpgradeV1LayerParameter, field by field.
    lp->set_name(v1.name());
    lp->set_type(v1_layer_type_name(v1.type()));
    *lp->mutable_bottom() = v1.bottom();
    *lp->mutable_top() = v1.top();
    *lp->mutable_include() = v1.include();
    *lp->mutable_exclude() = v1.exclude();
    *lp->mutable_blobs() = v1.blobs();
    *lp->mutable_loss_weight() = v1.loss_weight();
    auto spec = [&](int i) {
      while (lp->param_size() <= i) lp->add_param();
      return lp->mutable_param(i);
    };
    for (int i = 0; i < v1.param_size(); ++i) spec(i)->set_name(v1.param(i));
    for (int i = 0; i < v1.blob_share_mode_size(); ++i) spec(i)->set_share_mode(v1.blob_share_mode(i));
    for (int i = 0; i < v1.blobs_lr_size(); ++i) spec(i)->set_lr_mult(v1.blobs_lr(i));
    for (int i = 0; i < v1.weight_decay_size(); ++i) spec(i)->set_decay_mult(v1.weight_decay(i));
    // The layer parameters keep their names and message types: copied by name.
    const pb::Reflection* v1_refl = v1.GetReflection();
    const pb::Reflection* refl = lp->GetReflection();
    for (int i = 0; i < v1_desc->field_count(); ++i) {
      const pb::FieldDescriptor* f = v1_desc->field(i);
      if (f->is_repeated() || !f->message_type() || !v1_refl->HasField(v1, f)) continue;
      const pb::FieldDescriptor* to = desc->FindFieldByName(f->name());
      MMF_CHECK(to && to->message_type() == f->message_type(), ParseError, display(file), ": V1 layer '", v1.name(),
                "': cannot upgrade field ", f->name());
      refl->MutableMessage(lp, to)->CopyFrom(v1_refl->GetMessage(v1, f));
    }
    if (v1.has_source_line()) lp->set_source_line(v1.source_line());
  }
  const int count = net.layers_size();
  net.clear_layers();
  note_once(file, "v1",
            "note: " + display(file) + " is in Caffe's V1 format (`layers { type: CONVOLUTION }`): its " +
                std::to_string(count) +
                " layers were upgraded on load to `layer { type: \"Convolution\" }` (blobs_lr and weight_decay "
                "became param { lr_mult decay_mult }), as Caffe's upgrade does");
  return true;
}

bool upgrade_solver_type(proto::SolverParameter& solver, const std::string& file) {
  if (!solver.has_solver_type()) return false;
  static const std::map<proto::SolverParameter::SolverType, const char*> names = {
      {proto::SolverParameter::SGD, "SGD"},         {proto::SolverParameter::NESTEROV, "Nesterov"},
      {proto::SolverParameter::ADAGRAD, "AdaGrad"}, {proto::SolverParameter::RMSPROP, "RMSProp"},
      {proto::SolverParameter::ADADELTA, "AdaDelta"}, {proto::SolverParameter::ADAM, "Adam"},
  };
  const std::string type = names.at(solver.solver_type());
  MMF_CHECK(!solver.has_type() || solver.type() == type, Error, display(file), ": solver_type ",
            proto::SolverParameter::SolverType_Name(solver.solver_type()), " (deprecated) and type '", solver.type(),
            "' disagree; set only type");
  solver.set_type(type);
  solver.clear_solver_type();
  note_once(file, "solver_type",
            "note: " + display(file) + ": the deprecated solver_type was read as type: \"" + type + "\"");
  return true;
}

bool layer_type_supported(const std::string& type) { return layer_registry().count(type) > 0; }

std::string unsupported_layer_type(const std::string& type) {
  if (type.empty()) return "no type given";
  std::vector<std::string> types = layer_types();
  // A near miss is a typo of a type we have, not a layer we lack.
  if (std::string s = suggest(type, types); !s.empty() && s != type)
    return "unknown type '" + type + "'; did you mean '" + s + "'?";
  std::string why;
  if (type == "Python")
    why = " (a Python layer runs Python code inside Caffe; mmfuse layers are C++: write one in layers/, "
          "docs/layers.md)";
  else if (type == "WindowData")
    why = " (R-CNN's window data layer, for detection fine-tuning; not part of mmfuse)";
  std::string list;
  for (const auto& t : types) list += (list.empty() ? "" : ", ") + t;
  return "layer type '" + type + "' is not supported by mmfuse" + why + "; supported types: " + list;
}

}  // namespace mmfuse
