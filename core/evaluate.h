// Evaluation: the test phase of training and `mmfuse test`.
//
// evaluate() runs a net's TEST forwards and averages its outputs over the batches, except the
// tops of metric layers (Layer::sums_metric_state: SegmentationMetric's confusion counts), which
// it sums over the whole run and hands back to their layer to be turned into scores.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/net.h"

namespace mmfuse {

// The confusion-matrix metrics of one metric row (one modality or the ensemble).
struct SegmentationScores {
  std::string name;         // "branch 0", ... or the blob name when the top holds one matrix
  double pixel_accuracy = 0;  // x100
  double mean_accuracy = 0;   // x100, over classes present in the ground truth
  double mean_iou = 0;        // x100, over classes with a non-empty union
  std::vector<double> class_iou;       // x100 per class; NaN where the union is empty
  std::vector<double> class_accuracy;  // x100 per class (recall); NaN where the class is absent
  std::vector<double> confusion;       // the K x K counts (rows ground truth, columns prediction)
};
// Metrics of one K x K confusion matrix (rows ground truth, columns prediction), x100.
SegmentationScores segmentation_scores(const std::vector<double>& confusion, int64_t num_classes);

struct TestResult {
  std::string net;  // "test net 0"
  std::vector<std::pair<std::string, double>> outputs;  // averaged over the batches, in order
  std::vector<SegmentationScores> segmentation;          // from the tops of metric layers
  // Lines as `mmfuse test` prints them ("    Test output #0: loss = 0.25").
  std::string format() const;
  // Lines as the solver prints them: each output of `net` with its loss weight, when it has
  // one ("    Test net output #0: loss = 0.25 (* 1 = 0.25 loss)"), then the segmentation table.
  std::string format_with_loss_weights(const Net& net) const;
  // Per-class IoU and accuracy of every segmentation row, one line per class.
  std::string format_per_class() const;
  // Each segmentation row's confusion matrix in percent of its ground-truth row.
  std::string format_confusion() const;
};

// Runs `iterations` TEST forwards of `net` (ForwardContext::iteration = 0..iterations-1) with
// grad off. Each output is averaged over the batches (a non-scalar output element-wise, named
// "blob[i]"), except the tops of metric layers: their counts are summed over the run and the
// layer turns them into scores (SegmentationMetric: pixel accuracy, mean accuracy and mIoU per
// row). `hooks` run around each layer as in Net::forward (`mmfuse probe` turns layers off).
TestResult evaluate(Net& net, int iterations, const std::string& label = "test net 0", const Net::Hooks* hooks = nullptr);

// The loss weight of output `blob` of `net` (0: not a loss).
float loss_weight_of(const Net& net, const std::string& blob);

}  // namespace mmfuse
