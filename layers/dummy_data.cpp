// DummyData (Caffe's): tops filled by data_filler (constant 0 by default), of the sizes in
// `shape` or the legacy num/channels/height/width. dummy_data_param { data_filler, shape, num,
// channels, height, width: each given once (for every top) or once per top; mmfuse: seed }.
// Random fillers draw afresh for every batch, from a generator of (seed, batch, top): batch b
// is a pure function of (seed, b), as for every data layer.
#include "core/filler.h"
#include "core/layer.h"
#include "datasets/data_layer.h"

namespace mmfuse {
namespace {

class DummyDataLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {0, 0, 1, -1}; }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext& ctx) override {
    const auto& p = layer_param().dummy_data_param();
    const int tops = layer_param().top_size();
    auto count_ok = [&](int n) { return n == 0 || n == 1 || n == tops; };
    if (!count_ok(p.data_filler_size()))
      fail("give 0, 1 or ", tops, " data_filler (one per top), got ", p.data_filler_size());
    const bool legacy = p.num_size() + p.channels_size() + p.height_size() + p.width_size() > 0;
    if (legacy && p.shape_size() > 0) fail("give shape or num/channels/height/width, not both");
    if (!legacy && (p.shape_size() == 0 || !count_ok(p.shape_size())))
      fail("give 1 or ", tops, " shape (one per top), got ", p.shape_size());
    for (int n : {p.num_size(), p.channels_size(), p.height_size(), p.width_size()})
      if (legacy && (n == 0 || !count_ok(n)))
        fail("num, channels, height and width are each given once or once per top (", tops, ")");
    auto pick = [](const auto& list, int t) -> decltype(auto) { return list.Get(list.size() == 1 ? 0 : t); };
    for (int t = 0; t < tops; ++t) {
      Shape s;
      if (legacy) {
        s = {pick(p.num(), t), pick(p.channels(), t), pick(p.height(), t), pick(p.width(), t)};
      } else {
        const auto& dims = pick(p.shape(), t).dim();
        s.assign(dims.begin(), dims.end());
      }
      for (int64_t d : s)
        if (d < 0) fail("top '", layer_param().top(t), "' has a negative dimension in ", shape_str(s));
      shapes_.push_back(s);
      fillers_.push_back(p.data_filler_size() == 0 ? make_filler("constant", 0) : pick(p.data_filler(), t));
      if (fillers_.back().type() != "constant") random_ = true;
    }
    seed_ = p.has_seed() ? p.seed() : ctx.gen.seed();
    dtype_ = ctx.dtype;
    return shapes_;
  }

  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    return forward_tops(random_ ? ctx.iteration : 0, ctx.device);
  }

 private:
  TensorList forward_tops(int64_t batch, Device device) const {
    TensorList tops;
    for (size_t t = 0; t < shapes_.size(); ++t) {
      Generator gen(datasets::mix_seed(seed_, static_cast<uint64_t>(batch), t));
      Tensor x = Tensor::zeros(shapes_[t], DType::f32);
      try {
        fill(x, fillers_[t], gen, fan_in_of(shapes_[t]), fan_out_of(shapes_[t]));
      } catch (const Error& e) {  // the net names the layer
        throw OpError("top '" + layer_param().top(static_cast<int>(t)) + "': " + e.what());
      }
      tops.push_back(x.to(dtype_).to(device));
    }
    return tops;
  }

  std::vector<Shape> shapes_;
  std::vector<proto::FillerParameter> fillers_;
  bool random_ = false;
  uint64_t seed_ = 0;
  DType dtype_ = DType::f32;
};

}  // namespace
MMF_REGISTER_LAYER(DummyData, DummyDataLayer)
}  // namespace mmfuse
