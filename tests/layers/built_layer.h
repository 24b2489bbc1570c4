// A layer built alone from its prototxt text, for the data-layer tests: set up with a net
// generator of `net_seed` in `phase`; batch(b) runs its forward for iteration b.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/layer.h"
#include "core/prototxt.h"

namespace mmfuse::testing {

struct Built {
  std::unique_ptr<Layer> layer;
  std::vector<Shape> shapes;  // the tops' shapes from setup
  proto::Phase phase;
  TensorList batch(int64_t b) {
    ForwardContext ctx;
    ctx.phase = phase;
    ctx.iteration = b;
    return layer->forward({}, ctx);
  }
};

inline Built build(const std::string& text, proto::Phase phase = proto::TRAIN, uint64_t net_seed = 7) {
  proto::LayerParameter lp;
  parse_text(text, "<layer>", lp);
  Built b{create_layer(lp), {}, phase};
  Generator gen(net_seed);
  LayerContext ctx{gen};
  ctx.phase = phase;
  b.shapes = b.layer->setup({}, ctx);
  return b;
}

}  // namespace mmfuse::testing
