// Where the modalities enter a net and where its fusion layers sit: what every part of the
// probe looks up (internal to probe/).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/net.h"

namespace mmfuse::probe {

// A per-stream blob name read as "<modality>.<rest>" (prefix) or "<rest>.<modality>" (as
// MMTM's tops are named).
struct StreamName {
  int64_t modality = 0;
  std::string rest;
  bool prefix = true;
};

struct NetMap {
  size_t data_layer = 0;              // the data layer whose modality_names() has >= 2 names
  std::vector<std::string> modalities;
  bool stacked = false;               // one top [M*N, ...] holds every modality
  std::vector<size_t> modality_tops;  // top indices of the data layer: 1 (stacked) or M
  int64_t label_top = -1;             // the data layer's label top (-1: none)
  std::vector<size_t> fusion_layers;  // ChannelShuffle, PixelShift, MMTM in net order
  std::vector<size_t> ensembles;      // ModalityEnsemble
  std::map<std::string, size_t> last_writer;  // blob name -> the layer that writes its final value
  int64_t modality_count() const { return static_cast<int64_t>(modalities.size()); }
  std::string modality(int64_t m) const;  // name of modality m ("modality 3" beyond the list)
  bool writes_final(const Net& net, size_t layer, size_t top) const;
  // Every reading of `name` as a stream of one of the modalities, in modality order, the prefix
  // form before the suffix form; empty for a name that carries no modality.
  std::vector<StreamName> stream_names(const std::string& name) const;
  // The blob name of `stream`'s twin for modality m.
  std::string stream_blob(const StreamName& stream, int64_t m) const;
};

// Throws Error naming what is missing when the net has no multimodal data layer.
NetMap map_net(const Net& net);

// Does the layer's type count as a fusion layer that can be turned off (top := bottom)?
bool is_fusion_type(const std::string& type);

}  // namespace mmfuse::probe
