#include "core/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "base/format.h"
#include "core/autograd.h"
#include "core/distributed.h"

namespace mmfuse {

namespace {
std::string right(size_t v, int width, const char* before = "") {  // v right-aligned in `width` columns
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%*zu", before, width, v);
  return buf;
}
std::string cell(double v, const char* format) { return std::isnan(v) ? std::string("      -") : format_number(format, v); }
}  // namespace

SegmentationScores segmentation_scores(const std::vector<double>& c, int64_t k) {
  MMF_CHECK(static_cast<int64_t>(c.size()) == k * k, Error, "segmentation_scores: ", c.size(),
            " counts for ", k, " classes");
  SegmentationScores s;
  s.confusion = c;
  s.class_iou.assign(static_cast<size_t>(k), std::nan(""));
  s.class_accuracy.assign(static_cast<size_t>(k), std::nan(""));
  double total = 0, diag = 0, acc_sum = 0, iou_sum = 0;
  int64_t acc_n = 0, iou_n = 0;
  for (int64_t i = 0; i < k; ++i) {
    double row = 0, col = 0;
    for (int64_t j = 0; j < k; ++j) {
      row += c[i * k + j];
      col += c[j * k + i];
    }
    double tp = c[i * k + i];
    total += row;
    diag += tp;
    if (row > 0) {
      s.class_accuracy[static_cast<size_t>(i)] = 100 * tp / row;
      acc_sum += tp / row;
      ++acc_n;
    }
    double uni = row + col - tp;
    if (uni > 0) {
      s.class_iou[static_cast<size_t>(i)] = 100 * tp / uni;
      iou_sum += tp / uni;
      ++iou_n;
    }
  }
  s.pixel_accuracy = total > 0 ? 100 * diag / total : 0;
  s.mean_accuracy = acc_n ? 100 * acc_sum / static_cast<double>(acc_n) : 0;
  s.mean_iou = iou_n ? 100 * iou_sum / static_cast<double>(iou_n) : 0;
  return s;
}

float loss_weight_of(const Net& net, const std::string& blob) {
  for (const auto& [name, w] : net.loss_weights())
    if (name == blob) return w;
  return 0;
}

std::string TestResult::format() const {
  std::string out;
  for (size_t i = 0; i < outputs.size(); ++i)
    out += "    " + net + " output #" + std::to_string(i) + ": " + outputs[i].first + " = " +
           format_number("%.6g", outputs[i].second) + "\n";
  if (!segmentation.empty()) {
    size_t w = 12;
    for (const auto& s : segmentation) w = std::max(w, s.name.size());
    std::string head = "segmentation";
    out += "    " + head + std::string(w - head.size(), ' ') + "  pixel acc  mean acc   mIoU\n";
    for (const auto& s : segmentation)
      out += "    " + s.name + std::string(w - s.name.size(), ' ') + format_number("  %9.2f", s.pixel_accuracy) +
             format_number("  %8.2f", s.mean_accuracy) + format_number("  %6.2f", s.mean_iou) + "\n";
  }
  return out;
}

std::string TestResult::format_with_loss_weights(const Net& source) const {
  std::string out;
  for (size_t k = 0; k < outputs.size(); ++k) {
    const auto& [n, v] = outputs[k];
    float w = loss_weight_of(source, n);
    out += "    " + net + " output #" + std::to_string(k) + ": " + n + " = " + format_number("%.6g", v) +
           (w != 0 ? " (* " + format_number("%g", w) + " = " + format_number("%.6g", w * v) + " loss)" : "") + "\n";
  }
  TestResult table = *this;
  table.outputs.clear();
  return out + table.format();
}

std::string TestResult::format_per_class() const {
  std::string out;
  for (const auto& s : segmentation) {
    out += "    " + s.name + ": class    IoU    acc\n";
    for (size_t i = 0; i < s.class_iou.size(); ++i)
      out += right(i, 5, "      ") + cell(s.class_iou[i], " %6.2f") + cell(s.class_accuracy[i], " %6.2f") + "\n";
  }
  return out;
}

std::string TestResult::format_confusion() const {
  std::string out;
  for (const auto& s : segmentation) {
    size_t k = s.class_iou.size();
    out += "    " + s.name + ": % of each ground-truth class (rows) predicted as (columns)\n        ";
    for (size_t j = 0; j < k; ++j) out += right(j, 5, " ");
    out += "\n";
    for (size_t i = 0; i < k; ++i) {
      double row = 0;
      for (size_t j = 0; j < k; ++j) row += s.confusion[i * k + j];
      out += right(i, 3, "    ") + " ";
      for (size_t j = 0; j < k; ++j) out += row > 0 ? format_number(" %5.1f", 100 * s.confusion[i * k + j] / row) : "     -";
      out += "\n";
    }
  }
  return out;
}

TestResult evaluate(Net& net, int iterations, const std::string& label, const Net::Hooks* hooks) {
  MMF_CHECK(iterations > 0, Error, "test: the number of iterations must be positive, got ", iterations);
  autograd::NoGradGuard no_grad;
  // The tops of metric layers, by name: their counts are summed, then scored by the layer.
  struct MetricTop {
    const Layer* layer;
    size_t top;
  };
  std::map<std::string, MetricTop> metric;
  for (size_t i = 0; i < net.layers().size(); ++i)
    if (net.layers()[i]->sums_metric_state())
      for (size_t t = 0; t < net.top_names(i).size(); ++t) metric[net.top_names(i)[t]] = {net.layers()[i].get(), t};
  std::vector<std::string> names = net.output_names();
  for (const auto& [s, m] : metric)
    if (std::find(names.begin(), names.end(), s) == names.end()) names.push_back(s);
  std::map<std::string, std::vector<double>> sums;
  std::map<std::string, Shape> shapes;
  for (int it = 0; it < iterations; ++it) {
    auto blobs = net.forward({}, it, hooks);
    for (const auto& n : names) {
      const Tensor& t = blobs.at(n);
      std::vector<double> v = t.to_vector<double>();
      auto& acc = sums[n];
      if (acc.empty()) {
        acc.assign(v.size(), 0.0);
        shapes[n] = t.shape();
      }
      MMF_CHECK(acc.size() == v.size(), Error, "test: output '", n, "' changed size between batches");
      for (size_t i = 0; i < v.size(); ++i) acc[i] += v[i];
    }
  }
  // Data-parallel: every rank ran its shard of the same test batches; the sums (the confusion
  // counts among them) are summed over the ranks, in the order of `names` on every rank, and
  // the averages are over all ranks' batches.
  dist::World& world = dist::world();
  for (const auto& n : names) world.allreduce_sum(sums[n].data(), sums[n].size(), "the test sums of '" + n + "'");
  const double batches = static_cast<double>(iterations) * world.size();
  TestResult r;
  r.net = label;
  for (const auto& n : names) {
    const auto& acc = sums[n];
    if (auto m = metric.find(n); m != metric.end()) {
      std::vector<SegmentationScores> rows = m->second.layer->metric_scores(m->second.top, acc, shapes[n]);
      for (size_t b = 0; b < rows.size(); ++b) {
        if (rows.size() == 1)
          rows[b].name = n;
        else
          rows[b].name = (metric.size() > 1 ? n + " " : std::string()) + "branch " + std::to_string(b);
        r.segmentation.push_back(std::move(rows[b]));
      }
      continue;
    }
    if (acc.size() == 1) {
      r.outputs.emplace_back(n, acc[0] / batches);
    } else {
      for (size_t i = 0; i < acc.size(); ++i)
        r.outputs.emplace_back(n + "[" + std::to_string(i) + "]", acc[i] / batches);
    }
  }
  return r;
}

}  // namespace mmfuse
