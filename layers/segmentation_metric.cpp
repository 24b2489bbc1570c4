// SegmentationMetric (mmfuse): confusion counts for pixel accuracy, mean class accuracy and
// mIoU over a whole test run (metric state: the test loop sums the counts over its batches and
// asks the layer for the metrics at the end, core/evaluate.h). Bottoms: logits [M*N, K, H, W]
// (modality-major stack) and label [N, H, W] or [N, 1, H, W] (int32, or float holding integers).
// segmentation_metric_param { num_classes (K; defaults to the logits' channels) ignore_label
// (255) modalities (1) }. Top: counts [M, K, K] float32 — rows ground truth, columns the argmax
// over K (the first maximum on ties); pixels labelled ignore_label or >= K (or < 0) are skipped.
// No gradient.
#include <cmath>

#include "core/evaluate.h"
#include "core/layer.h"
#include "core/ops.h"

namespace mmfuse {
namespace {

class SegmentationMetricLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {2, 2, 1, 1}; }
  bool sums_metric_state() const override { return true; }

  // One row of scores per modality: the [M, K, K] counts summed over a run.
  std::vector<SegmentationScores> metric_scores(size_t top, const std::vector<double>& summed,
                                                const Shape& s) const override {
    if (s.size() != 3 || s[1] != s[2] || static_cast<int64_t>(summed.size()) != s[0] * s[1] * s[2])
      fail("top '", layer_param().top(static_cast<int>(top)), "' has shape ", shape_str(s), ", expected [M, K, K]");
    const int64_t m = s[0], k = s[1];
    std::vector<SegmentationScores> rows;
    for (int64_t b = 0; b < m; ++b)
      rows.push_back(segmentation_scores(std::vector<double>(summed.begin() + b * k * k, summed.begin() + (b + 1) * k * k), k));
    return rows;
  }

  std::vector<Shape> setup(const std::vector<Shape>& b, LayerContext&) override {
    const auto& p = layer_param().segmentation_metric_param();
    const Shape &x = b[0], &label = b[1];
    if (x.size() != 4) fail("logits must be [M*N, K, H, W], got ", shape_str(x));
    m_ = p.modalities();
    if (m_ < 1) fail("modalities must be >= 1, got ", m_);
    if (x[0] % m_ != 0) fail("the batch of ", shape_str(x), " does not split into ", m_, " modalities");
    k_ = p.has_num_classes() ? p.num_classes() : x[1];
    if (k_ != x[1]) fail("num_classes ", k_, " but the logits ", shape_str(x), " have ", x[1], " channels");
    Shape want3{x[0] / m_, x[2], x[3]}, want4{x[0] / m_, 1, x[2], x[3]};
    if (label != want3 && label != want4)
      fail("label must be ", shape_str(want3), " for logits ", shape_str(x), " with ", m_, " modalities, got ",
           shape_str(label));
    return {Shape{m_, k_, k_}};
  }

  TensorList forward(const TensorList& b, ForwardContext&) override {
    const auto& p = layer_param().segmentation_metric_param();
    const Tensor& x = b[0];
    std::vector<float> s = x.to_vector<float>();
    std::vector<double> lab = b[1].to_vector<double>();
    int64_t n = x.size(0) / m_, hw = x.size(2) * x.size(3);
    std::vector<float> counts(static_cast<size_t>(m_ * k_ * k_), 0.f);
    for (int64_t m = 0; m < m_; ++m)
      for (int64_t i = 0; i < n; ++i) {
        const float* img = s.data() + (m * n + i) * k_ * hw;
        for (int64_t q = 0; q < hw; ++q) {
          double lv = lab[static_cast<size_t>(i * hw + q)];
          int64_t l = static_cast<int64_t>(std::llround(lv));
          if (l == p.ignore_label() || l < 0 || l >= k_) continue;
          int64_t best = 0;
          for (int64_t k = 1; k < k_; ++k)
            if (img[k * hw + q] > img[best * hw + q]) best = k;
          counts[static_cast<size_t>((m * k_ + l) * k_ + best)] += 1.f;
        }
      }
    return {Tensor::from_vector(counts, {m_, k_, k_}).to(x.device())};
  }

 private:
  int64_t m_ = 1, k_ = 1;
};

}  // namespace
MMF_REGISTER_LAYER(SegmentationMetric, SegmentationMetricLayer)
}  // namespace mmfuse
