// Moving between per-modality blobs and one modality-stacked blob [M*N, ...] (modality m is the
// batch slice [m*N, (m+1)*N)). modality_param { modalities (2) }.
//   ModalityStack  M bottoms of one shape [N, ...] -> 1 top [M*N, ...] (torch.cat on dim 0);
//                  M is the number of bottoms (modalities, if given, must agree).
//   ModalitySplit  1 bottom [M*N, ...] -> M tops [N, ...], views of the bottom (no copy);
//                  M is the number of tops (modalities, if given, must agree).
//   ModalityTile   1 blob [N, ...] of any dtype (labels) -> [M*N, ...], M copies along dim 0
//                  (torch's label.repeat(M, 1, ...)): pairs one label blob with stacked logits
//                  so that an ordinary loss layer gives the sum of the per-modality losses.
// No parameters.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class ModalityStackLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {1, -1, 1, 1}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().modality_param();
    if (p.has_modalities() && p.modalities() != static_cast<int>(bottoms.size()))
      fail("modalities = ", p.modalities(), " but ", bottoms.size(), " bottoms (one per modality)");
    for (size_t m = 0; m < bottoms.size(); ++m) {
      if (bottoms[m].empty()) fail("bottoms need a batch dim, got ", shape_str(bottoms[m]));
      if (bottoms[m] != bottoms[0])
        fail("bottoms must have one shape, got ", shape_str(bottoms[0]), " and ", shape_str(bottoms[m]), " (bottom ", m,
             ")");
    }
    Shape top = bottoms[0];
    top[0] *= static_cast<int64_t>(bottoms.size());
    return {top};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override { return {modality_stack(bottoms)}; }
};

class ModalitySplitLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {1, 1, 1, -1}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().modality_param();
    int64_t modalities = layer_param().top_size();
    if (p.has_modalities() && p.modalities() != modalities)
      fail("modalities = ", p.modalities(), " but ", modalities, " tops (one per modality)");
    Shape part = bottoms[0];
    if (part.empty()) fail("expects a modality-stacked bottom [M*N, ...], got ", shape_str(part));
    if (part[0] % modalities != 0)
      fail("batch of ", shape_str(part), " is not divisible by ", modalities, " modalities");
    part[0] /= modalities;
    return std::vector<Shape>(static_cast<size_t>(modalities), part);
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    return modality_split(bottoms[0], layer_param().top_size());
  }
};

class ModalityTileLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    int64_t modalities = layer_param().modality_param().modalities();
    if (modalities < 1) fail("modalities must be >= 1, got ", modalities);
    Shape top = bottoms[0];
    if (top.empty()) fail("needs a batch dim, got ", shape_str(top));
    top[0] *= modalities;
    return {top};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    return {modality_tile(bottoms[0], layer_param().modality_param().modalities())};
  }
};

}  // namespace
MMF_REGISTER_LAYER(ModalityStack, ModalityStackLayer)
MMF_REGISTER_LAYER(ModalitySplit, ModalitySplitLayer)
MMF_REGISTER_LAYER(ModalityTile, ModalityTileLayer)
}  // namespace mmfuse
