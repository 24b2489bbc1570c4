// Accuracy (Caffe): the fraction of positions whose true label is among the top_k scores.
// Bottoms: scores [N*M, C, ...] (classes on `axis`) and labels with N * (dims after axis)
// elements ([N], [N, 1], [N, H, W], [N, 1, H, W], int or float). accuracy_param { top_k (1)
// axis (1) ignore_label (unset) modalities (1) }: with M modalities the scores are
// modality-stacked ([M*N, ...], modality-major) against one label; the result is the average
// over all M*N positions. Caffe's tie rule: a class scoring >= the true class counts as better.
// Top: a scalar. No gradient (the top does not depend on the scores differentiably).
#include <cmath>

#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class AccuracyLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, 2, 1, 1}; }

  std::vector<Shape> setup(const std::vector<Shape>& b, LayerContext&) override {
    const auto& p = layer_param().accuracy_param();
    const Shape &x = b[0], &label = b[1];
    axis_ = canonical_axis(p.axis(), static_cast<int64_t>(x.size()));
    if (p.modalities() < 1) fail("accuracy_param.modalities must be >= 1, got ", p.modalities());
    if (p.top_k() < 1) fail("top_k must be >= 1, got ", p.top_k());
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis_; ++d) outer *= x[d];
    for (size_t d = axis_ + 1; d < x.size(); ++d) inner *= x[d];
    if (outer % p.modalities() != 0)
      fail("the ", outer, " rows of the scores ", shape_str(x), " do not split into ", p.modalities(), " modalities");
    if (shape_numel(label) != outer / p.modalities() * inner)
      fail("label ", shape_str(label), " must have ", outer / p.modalities() * inner, " elements for scores ",
           shape_str(x), " (", p.modalities(), " modalities)");
    if (static_cast<int64_t>(p.top_k()) > x[axis_])
      fail("top_k ", p.top_k(), " exceeds the ", x[axis_], " classes of ", shape_str(x));
    return {Shape{}};
  }

  TensorList forward(const TensorList& b, ForwardContext&) override {
    const auto& p = layer_param().accuracy_param();
    const Tensor& x = b[0];
    std::vector<double> s = x.to_vector<double>();
    std::vector<double> lab = b[1].to_vector<double>();
    int64_t classes = x.size(axis_), outer = 1, inner = 1;
    for (int64_t d = 0; d < axis_; ++d) outer *= x.size(d);
    for (int64_t d = axis_ + 1; d < x.dim(); ++d) inner *= x.size(d);
    int64_t per_modality = outer / p.modalities();
    int64_t correct = 0, count = 0;
    for (int64_t i = 0; i < outer; ++i)
      for (int64_t j = 0; j < inner; ++j) {
        double lv = lab[static_cast<size_t>((i % per_modality) * inner + j)];
        int64_t l = static_cast<int64_t>(std::llround(lv));
        if (p.has_ignore_label() && l == p.ignore_label()) continue;
        if (l < 0 || l >= classes)
          throw OpError(describe() + ": label " + std::to_string(l) + " outside [0, " + std::to_string(classes) + ")");
        const double* row = s.data() + i * classes * inner + j;
        double truth = row[l * inner];
        int64_t better = -1;  // the true class counts itself
        for (int64_t k = 0; k < classes && better < static_cast<int64_t>(p.top_k()); ++k)
          better += row[k * inner] >= truth ? 1 : 0;
        correct += better < static_cast<int64_t>(p.top_k()) ? 1 : 0;
        ++count;
      }
    double acc = count ? static_cast<double>(correct) / static_cast<double>(count) : 0.0;
    return {Tensor::scalar(acc, x.dtype(), x.device())};
  }

 private:
  int64_t axis_ = 1;
};

}  // namespace
MMF_REGISTER_LAYER(Accuracy, AccuracyLayer)
}  // namespace mmfuse
