// ChannelShuffle (AsymFusion's channel shuffle, cyclic for M > 2): 1 modality-stacked bottom
// [M*N, C, ...] -> 1 top of the same shape. Modality m keeps channels [0, k) and takes [k, C)
// from modality (m+1) mod M, k = channel_shuffle_kept(C, keep_ratio) (0.8: k = 4*floor(C/5)).
// channel_shuffle_param { modalities (2) keep_ratio (0.8) receivers (empty: all) }; modalities
// that are not receivers pass through. No parameters.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class ChannelShuffleLayer : public Layer {
 public:
  using Layer::Layer;

  // The op's own checks, on the shapes.
  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().channel_shuffle_param();
    try {
      return {channel_shuffle_shape(bottoms[0], p.modalities(), p.keep_ratio(), receivers())};
    } catch (const OpError& e) {
      fail(e.what());
    }
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().channel_shuffle_param();
    return {channel_shuffle(bottoms[0], p.modalities(), p.keep_ratio(), receivers())};
  }

 private:
  std::vector<int64_t> receivers() const {
    const auto& r = layer_param().channel_shuffle_param().receivers();
    return {r.begin(), r.end()};
  }
};

}  // namespace
MMF_REGISTER_LAYER(ChannelShuffle, ChannelShuffleLayer)
}  // namespace mmfuse
