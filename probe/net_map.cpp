#include "probe/net_map.h"

#include "base/error.h"

namespace mmfuse::probe {

bool is_fusion_type(const std::string& type) {
  return type == "ChannelShuffle" || type == "PixelShift" || type == "MMTM";
}

std::string NetMap::modality(int64_t m) const {
  return m >= 0 && m < modality_count() ? modalities[static_cast<size_t>(m)] : "modality " + std::to_string(m);
}

bool NetMap::writes_final(const Net& net, size_t layer, size_t top) const {
  auto it = last_writer.find(net.top_names(layer).at(top));
  return it != last_writer.end() && it->second == layer;
}

std::vector<StreamName> NetMap::stream_names(const std::string& name) const {
  std::vector<StreamName> out;
  for (int64_t m = 0; m < modality_count(); ++m) {
    const std::string mod = modality(m);
    if (name.size() <= mod.size()) continue;
    if (name.compare(0, mod.size() + 1, mod + ".") == 0) out.push_back({m, name.substr(mod.size() + 1), true});
    if (name.compare(name.size() - mod.size() - 1, std::string::npos, "." + mod) == 0)
      out.push_back({m, name.substr(0, name.size() - mod.size() - 1), false});
  }
  return out;
}

std::string NetMap::stream_blob(const StreamName& stream, int64_t m) const {
  return stream.prefix ? modality(m) + "." + stream.rest : stream.rest + "." + modality(m);
}

NetMap map_net(const Net& net) {
  NetMap map;
  bool found = false;
  for (size_t i = 0; i < net.layers().size(); ++i) {
    const Layer& layer = *net.layers()[i];
    for (const auto& top : net.top_names(i)) map.last_writer[top] = i;
    if (is_fusion_type(layer.type())) map.fusion_layers.push_back(i);
    if (layer.type() == "ModalityEnsemble") map.ensembles.push_back(i);
    if (found || layer.modality_names().size() < 2) continue;
    found = true;
    map.data_layer = i;
    map.modalities = layer.modality_names();
    size_t tops = net.top_names(i).size(), m = map.modalities.size();
    // One floating top for M modalities is a stacked one; otherwise one top per modality.
    map.stacked = tops < m + 1;
    if (map.stacked) {
      map.modality_tops = {0};
    } else {
      for (size_t t = 0; t < m; ++t) map.modality_tops.push_back(t);
    }
    size_t label = map.stacked ? 1 : m;
    if (label < tops) map.label_top = static_cast<int64_t>(label);
  }
  MMF_CHECK(found, Error, "probe: net '", net.name(),
            "' has no data layer with several modalities (SyntheticRgbdData, SceneData, MultimodalImageData, "
            "FashionMnistData with two_view) in its TEST phase: nothing to probe");
  return map;
}

}  // namespace mmfuse::probe
