// Pooling (Caffe's fields, torch.nn.functional.max_pool2d / avg_pool2d's numerics) of a
// [N, C, H, W] bottom. pooling_param { pool (MAX | AVE; STOCHASTIC is not supported)
// kernel_size | kernel_h kernel_w, stride (1) | stride_h stride_w, pad (0) | pad_h pad_w,
// global_pooling (false), round_mode (CEIL, Caffe's default | FLOOR) }.
// round_mode CEIL is PyTorch's ceil_mode = true, which has Caffe's rule that the last window
// must start inside the input or its left padding; AVE divides by the window clipped to the
// padded bounds (count_include_pad = true, Caffe's behaviour). Where Caffe's size differs
// (pad 0 with stride > kernel: Caffe keeps a window lying wholly past the input; pad > kernel/2:
// Caffe accepts, we reject) is documented in core/ops/pool.h and docs/layers.md.
// global_pooling: one window over all of H x W (pad 0, stride 1): [N, C, 1, 1].
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class PoolingLayer : public Layer {
 public:
  using Layer::Layer;

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().pooling_param();
    const Shape& x = bottoms[0];
    if (x.size() != 4) fail("expects a [N, C, H, W] bottom, got ", shape_str(x));
    if (p.pool() == proto::PoolingParameter::STOCHASTIC)
      fail("pool: STOCHASTIC is not supported (use MAX or AVE)");
    if (p.global_pooling()) {
      if (p.has_kernel_size() || p.has_kernel_h() || p.has_kernel_w())
        fail("global_pooling takes the whole input: give no kernel size");
      if (p.pad() || p.pad_h() || p.pad_w() || p.stride() != 1 || p.has_stride_h() || p.has_stride_w())
        fail("global_pooling needs pad 0 and stride 1");
      return {{x[0], x[1], 1, 1}};
    }
    Pool2dOptions& o = options_;
    if (p.has_kernel_h() || p.has_kernel_w()) {
      if (p.has_kernel_size()) fail("give kernel_size or kernel_h and kernel_w, not both");
      if (!p.has_kernel_h() || !p.has_kernel_w()) fail("kernel_h and kernel_w go together");
      o.kernel_h = p.kernel_h();
      o.kernel_w = p.kernel_w();
    } else {
      if (!p.has_kernel_size()) fail("kernel_size (or kernel_h and kernel_w) is required");
      o.kernel_h = o.kernel_w = p.kernel_size();
    }
    if (p.has_pad_h() || p.has_pad_w()) {
      if (p.has_pad()) fail("give pad or pad_h and pad_w, not both");
      o.pad_h = p.pad_h();
      o.pad_w = p.pad_w();
    } else {
      o.pad_h = o.pad_w = p.pad();
    }
    if (p.has_stride_h() || p.has_stride_w()) {
      if (p.has_stride()) fail("give stride or stride_h and stride_w, not both");
      if (!p.has_stride_h() || !p.has_stride_w()) fail("stride_h and stride_w go together");
      o.stride_h = p.stride_h();
      o.stride_w = p.stride_w();
    } else {
      o.stride_h = o.stride_w = p.stride();
    }
    if (o.kernel_h < 1 || o.kernel_w < 1) fail("kernel must be positive, got ", o.kernel_h, "x", o.kernel_w);
    if (o.stride_h < 1 || o.stride_w < 1) fail("stride must be positive, got ", o.stride_h, "x", o.stride_w);
    if (2 * o.pad_h > o.kernel_h || 2 * o.pad_w > o.kernel_w)
      fail("pad ", o.pad_h, "x", o.pad_w, " must be at most half the kernel ", o.kernel_h, "x", o.kernel_w);
    if (x[2] + 2 * o.pad_h < o.kernel_h || x[3] + 2 * o.pad_w < o.kernel_w)
      fail("kernel ", o.kernel_h, "x", o.kernel_w, " is larger than the padded input of ", shape_str(x));
    o.ceil_mode = p.round_mode() == proto::PoolingParameter::CEIL;
    o.count_include_pad = true;
    return {{x[0], x[1], pool_output_size(x[2], o.kernel_h, o.stride_h, o.pad_h, o.ceil_mode),
             pool_output_size(x[3], o.kernel_w, o.stride_w, o.pad_w, o.ceil_mode)}};
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    const auto& p = layer_param().pooling_param();
    const Tensor& x = bottoms[0];
    bool max = p.pool() == proto::PoolingParameter::MAX;
    if (p.global_pooling()) {
      if (!max) return {global_avg_pool(x, /*keepdim=*/true)};
      return {max_pool2d(x, {x.size(2), x.size(3), 1, 1, 0, 0, false})};
    }
    return {max ? max_pool2d(x, options_) : avg_pool2d(x, options_)};
  }

 private:
  Pool2dOptions options_;
};

}  // namespace
MMF_REGISTER_LAYER(Pooling, PoolingLayer)
}  // namespace mmfuse
