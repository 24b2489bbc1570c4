// LRN (Caffe's local response normalisation, AlexNet's): y = x / scale^beta on [N, C, H, W].
//   ACROSS_CHANNELS (default): scale = k + alpha / n * sum of x^2 over the n = local_size channels
//     centred on the channel (zero beyond the edges): torch.nn.LocalResponseNorm(n, alpha, beta, k).
//   WITHIN_CHANNEL: scale = 1 + alpha / n^2 * sum of x^2 over the n x n pixels centred on the
//     pixel (zero beyond the edges); Caffe's formula has 1 here whatever k says.
// local_size must be odd (as Caffe). Made of ops: the windowed mean of x^2 is an average
// pooling that counts the zero padding, which divides by n (n^2) everywhere.
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class LRNLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().lrn_param();
    if (bottoms[0].size() != 4) fail("bottom must be [N, C, H, W], got ", shape_str(bottoms[0]));
    if (p.local_size() % 2 != 1) fail("local_size must be odd, got ", p.local_size());
    if (!(p.beta() >= 0) || !(p.alpha() >= 0)) fail("alpha and beta must be >= 0, got ", p.alpha(), " and ", p.beta());
    if (p.norm_region() == proto::LRNParameter::ACROSS_CHANNELS && !(p.k() > 0)) fail("k must be > 0, got ", p.k());
    return {bottoms[0]};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().lrn_param();
    const Tensor& x = bottoms[0];
    const Shape& s = x.shape();
    const int64_t n = p.local_size(), half = (n - 1) / 2;
    Tensor square = x * x;
    Tensor scale;
    if (p.norm_region() == proto::LRNParameter::ACROSS_CHANNELS) {
      // Channels as the pooled height: [N, 1, C, H*W], a window of n x 1.
      Tensor window = avg_pool2d(square.reshape({s[0], 1, s[1], s[2] * s[3]}), {n, 1, 1, 1, half, 0});
      scale = window.reshape(s) * static_cast<double>(p.alpha()) + static_cast<double>(p.k());
    } else {
      scale = avg_pool2d(square, Pool2dOptions::square(n, 1, half)) * static_cast<double>(p.alpha()) + 1.0;
    }
    return {x * pow(scale, -static_cast<double>(p.beta()))};
  }
};

}  // namespace
MMF_REGISTER_LAYER(LRN, LRNLayer)
}  // namespace mmfuse
