// Caffe's older files, read as Caffe reads them (docs/interop.md, "Caffe's prototxt files").
//
// - V1 nets (`layers { type: CONVOLUTION blobs_lr: 1 weight_decay: 1 ... }`, as in much of
//   the Caffe Model Zoo) are upgraded on load to `layer { type: "Convolution" param { lr_mult
//   decay_mult } }` by Caffe's rules (UpgradeV1LayerParameter), with a note on stderr. V0
//   nets (`layers { layer { ... } }`, padding layers) are not read.
// - Solvers with the deprecated `solver_type: ADAGRAD` get `type: "AdaGrad"`.
// - A layer type mmfuse does not have is named as exactly that, with the supported types.
#pragma once
#include <string>

#include "core/proto/mmfuse.pb.h"

namespace mmfuse {

// Caffe's V2 type name of a V1 enum value ("Convolution" for CONVOLUTION, "" for NONE).
std::string v1_layer_type_name(proto::V1LayerParameter::LayerType type);

// Moves `net.layers` (V1) into `net.layer`. Returns false when the net has no V1 layers.
// Throws ParseError (naming `file`) for a net that mixes `layer` and `layers`, as Caffe does.
bool upgrade_v1_net(proto::NetParameter& net, const std::string& file);

// `solver_type` (enum) into `type` (string). Throws Error naming `file` when both are set to
// different solvers. Returns false when there was nothing to upgrade.
bool upgrade_solver_type(proto::SolverParameter& solver, const std::string& file);

// The message for a layer type that is not registered: a near miss suggests the type
// ("unknown type 'Convolutoin'; did you mean 'Convolution'?"), otherwise "layer type 'Power'
// is not supported by mmfuse; supported types: ..." (with why, for Python and WindowData).
std::string unsupported_layer_type(const std::string& type);
bool layer_type_supported(const std::string& type);

}  // namespace mmfuse
