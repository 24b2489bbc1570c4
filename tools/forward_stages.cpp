#include "tools/forward_stages.h"

#include "core/autograd.h"

namespace mmfuse::tools {

BlobStages::BlobStages(const Net& net, const std::map<std::string, Tensor>& inputs, bool tap_gradients)
    : net_(net), tap_gradients_(tap_gradients) {
  for (const std::string& name : net.net_param().input()) stage_counts_[name] = 1;
  for (size_t i = 0; i < net.layers().size(); ++i)
    for (const std::string& name : net.top_names(i)) stage_counts_[name]++;
  for (const std::string& name : net.net_param().input()) {
    auto it = inputs.find(name);
    if (in_place(name) && it != inputs.end()) stages_.push_back({name, "input", it->second, nullptr});
  }
}

Net::Hooks BlobStages::hooks() {
  return {nullptr, [this](size_t layer, TensorList& tops) { after_layer(layer, tops); }};
}

void BlobStages::after_layer(size_t layer, TensorList& tops) {
  const std::string& writer = net_.layers()[layer]->name();
  for (size_t t = 0; t < tops.size(); ++t) {
    BlobStage stage{net_.top_names(layer)[t], writer, tops[t], std::make_shared<Tensor>()};
    if (tap_gradients_ && tops[t].requires_grad()) {
      Tensor y = tops[t].detach();
      autograd::record("GradTap", {tops[t]}, {y}, [slot = stage.tapped](const TensorList& g) -> TensorList {
        *slot = g[0];
        return {g[0]};
      });
      tops[t] = stage.value = y;
    }
    stages_.push_back(std::move(stage));
  }
}

const BlobStage* BlobStages::last(const std::string& blob) const {
  for (auto it = stages_.rbegin(); it != stages_.rend(); ++it)
    if (it->blob == blob) return &*it;
  return nullptr;
}

bool BlobStages::in_place(const std::string& blob) const {
  auto it = stage_counts_.find(blob);
  return it != stage_counts_.end() && it->second > 1;
}

}  // namespace mmfuse::tools
