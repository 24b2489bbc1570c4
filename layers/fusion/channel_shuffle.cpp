// ChannelShuffle (AsymFusion's channel shuffle, cyclic for M > 2): 1 modality-stacked bottom
// [M*N, C, ...] -> 1 top of the same shape. Modality m keeps channels [0, k) and takes [k, C)
// from modality (m+1) mod M, k = channel_shuffle_kept(C, keep_ratio) (0.8: k = 4*floor(C/5)).
// channel_shuffle_param { modalities (2) keep_ratio (0.8) receivers (empty: all) }; modalities
// that are not receivers pass through. No parameters.
#include <cmath>
#include <set>

#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class ChannelShuffleLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().channel_shuffle_param();
    const Shape& x = bottoms[0];
    if (p.modalities() < 1) fail("modalities must be >= 1, got ", p.modalities());
    if (x.size() < 2) fail("expects a modality-stacked bottom [M*N, C, ...], got ", shape_str(x));
    if (x[0] % p.modalities() != 0)
      fail("batch of ", shape_str(x), " is not divisible by modalities = ", p.modalities());
    try {
      channel_shuffle_kept(x[1], p.keep_ratio());
    } catch (const OpError& e) {
      fail(e.what());
    }
    std::set<int> seen;
    for (int r : p.receivers()) {
      if (r < 0 || r >= p.modalities()) fail("receiver ", r, " out of range for modalities = ", p.modalities());
      if (!seen.insert(r).second) fail("receiver ", r, " listed twice");
    }
    return {x};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().channel_shuffle_param();
    std::vector<int64_t> receivers(p.receivers().begin(), p.receivers().end());
    return {channel_shuffle(bottoms[0], p.modalities(), p.keep_ratio(), receivers)};
  }
};

}  // namespace
MMF_REGISTER_LAYER(ChannelShuffle, ChannelShuffleLayer)
}  // namespace mmfuse
