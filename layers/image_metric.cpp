// ImageMetric (mmfuse): image-quality figures of a prediction against the ground truth, for
// the test phase of translation nets (evaluate() averages them over the test batches). Bottoms
// pred and target of one shape [N, C, H, W]; 1 to 4 scalar tops, in this order:
//   l1    mean |pred - target|;
//   rmse  the mean over images of sqrt(mean over the image of (pred - target)^2);
//   psnr  the mean over images of 10 log10(data_range^2 / MSE_image) in dB (an MSE below
//         1e-10 counts as 1e-10: identical images give 100 dB + 20 log10(data_range), not Inf);
//   ssim  Wang et al.'s SSIM as skimage.metrics.structural_similarity computes it by default:
//         a uniform ssim_window x ssim_window window (7), sample covariances (w²/(w²-1)),
//         C1 = (0.01 L)², C2 = (0.03 L)² with L = data_range, the mean over the windows that
//         lie inside the image, over channels and images.
// image_metric_param { data_range (2: a Tanh output in [-1, 1]), ssim_window (7) }. The tops
// are figures, not losses (loss_weight 0); no gradient is recorded.
#include <cmath>

#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class ImageMetricLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, 2, 1, 4}; }

  std::vector<Shape> setup(const std::vector<Shape>& bottoms, LayerContext&) override {
    const auto& p = layer_param().image_metric_param();
    if (bottoms[0] != bottoms[1])
      fail("bottoms must have one shape, got ", shape_str(bottoms[0]), " and ", shape_str(bottoms[1]));
    if (bottoms[0].size() != 4) fail("expects images [N, C, H, W], got ", shape_str(bottoms[0]));
    if (!(p.data_range() > 0)) fail("data_range must be positive, got ", p.data_range());
    const int64_t w = p.ssim_window();
    if (w < 2 || w % 2 == 0) fail("ssim_window must be odd and >= 3, got ", w);
    if (layer_param().top_size() == 4 && (bottoms[0][2] < w || bottoms[0][3] < w))
      fail("images ", shape_str(bottoms[0]), " are smaller than the SSIM window ", w);
    return std::vector<Shape>(static_cast<size_t>(layer_param().top_size()), Shape{});
  }

  TensorList forward(const TensorList& bottoms, ForwardContext&) override {
    autograd::NoGradGuard no_grad;
    const auto& p = layer_param().image_metric_param();
    const Tensor &pred = bottoms[0], &target = bottoms[1];
    const int64_t n = pred.shape()[0];
    const double range = p.data_range();
    Tensor diff = sub(pred, target);
    Tensor mse = mean(mul(diff, diff).reshape({n, pred.numel() / n}), {1});  // per image
    TensorList tops{mean(abs(diff)), mean(pow(mse, 0.5))};
    if (layer_param().top_size() > 2)
      tops.push_back(mean(affine(log(div(Tensor::full({n}, range * range, pred.dtype(), pred.device()),
                                         clamp(mse, 1e-10, INFINITY))),
                                 10 / std::log(10.0), 0)));
    if (layer_param().top_size() > 3) tops.push_back(ssim(pred, target, p.ssim_window(), range));
    tops.resize(static_cast<size_t>(layer_param().top_size()));
    return tops;
  }

 private:
  static Tensor ssim(const Tensor& x, const Tensor& y, int64_t window, double range) {
    const auto o = Pool2dOptions::square(window, 1);
    auto local = [&](const Tensor& t) { return avg_pool2d(t, o); };
    const double cov = static_cast<double>(window * window) / static_cast<double>(window * window - 1);
    const double c1 = (0.01 * range) * (0.01 * range), c2 = (0.03 * range) * (0.03 * range);
    Tensor mx = local(x), my = local(y);
    Tensor vx = affine(sub(local(mul(x, x)), mul(mx, mx)), cov, 0);
    Tensor vy = affine(sub(local(mul(y, y)), mul(my, my)), cov, 0);
    Tensor vxy = affine(sub(local(mul(x, y)), mul(mx, my)), cov, 0);
    Tensor num = mul(affine(mul(mx, my), 2, c1), affine(vxy, 2, c2));
    Tensor den = mul(affine(add(mul(mx, mx), mul(my, my)), 1, c1), affine(add(vx, vy), 1, c2));
    return mean(div(num, den));
  }
};

}  // namespace
MMF_REGISTER_LAYER(ImageMetric, ImageMetricLayer)
}  // namespace mmfuse
