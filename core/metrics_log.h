// The metrics log of a training run and its training curve.
//
// MetricsLog writes one JSON line per display ({"iter", "lr", "loss", "outputs", "grad_norm",
// "samples_per_s", "rss_mb", "elapsed_s"}) and per test net run ({"phase": "test", "iter",
// "net", "outputs", "segmentation"}); nothing (folders included) until the first record. After
// a resume from iteration k the first write keeps only the records before k: the run repeats the
// rest. TrainingCurve holds the points of the training curve (the smoothed train loss at each
// display, each test output and mIoU), reads back the earlier ones from a log on resume, and
// draws them as an SVG (core/svg.h): losses above, the other test outputs below.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/evaluate.h"

namespace mmfuse {

// Creates the folder of an output file (nothing when it has none).
void create_parent(const std::string& file);

// The process's resident set in MiB (/proc/self/statm; 0 where it cannot be read): the
// `rss_mb` of the display records.
double resident_set_mb();

// The top-level number `key` of one metrics record (a line of the log; null reads as NaN);
// false when the line is not a record or has no such number.
bool record_number(const std::string& line, const std::string& key, double& value);
// The array `object`.`key` of one metrics record ("layers" / "<layer>" for logged figures);
// false when absent.
bool record_array(const std::string& line, const std::string& object, const std::string& key,
                  std::vector<double>& values);

class MetricsLog {
 public:
  MetricsLog() = default;
  explicit MetricsLog(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  // The run resumes at iteration `iter`: the first write drops the records from `iter` on.
  void resume_at(int64_t iter);
  // A display record. rss_mb is read here. `layers`: each layer's logged_figures (those with any).
  void write_train(int64_t iter, double lr, double loss, const std::vector<std::pair<std::string, double>>& outputs,
                   double grad_norm, double samples_per_s, double elapsed_s,
                   const std::vector<std::pair<std::string, std::vector<double>>>& layers = {});
  // The record of one test net's run.
  void write_test(int64_t iter, size_t net, const TestResult& result);

 private:
  void write(const std::string& json_line);

  std::string path_;
  bool resumed_ = false;
  int64_t resumed_at_ = 0;
  bool started_ = false;
};

class TrainingCurve {
 public:
  using Points = std::vector<std::pair<double, double>>;  // (iteration, value)

  void add_train(int64_t iter, double smoothed_loss) { train_.emplace_back(static_cast<double>(iter), smoothed_loss); }
  // The outputs and mIoU of test net `net` of `nets` (series "test <output>", or "test<net>
  // <output>" when there are several test nets).
  void add_test(int64_t iter, size_t net, size_t nets, const TestResult& result);
  // The points of the records before iteration `before` in the metrics log at `path` (a resume).
  void reload(const std::string& path, int64_t before, size_t nets);
  const Points& train() const { return train_; }
  // The figure: one chart of the losses (train and test) against the iteration, and a second
  // one below it of the other test outputs when there are any; "" when there is no point.
  std::string to_svg() const;
  // Writes to_svg() to `path` (an .svg file), making its folder; nothing when there is no point.
  // Throws IOError on failure.
  void write(const std::string& path) const;

 private:
  void add(const std::string& key, double iter, double value);

  Points train_;
  std::map<std::string, Points> tests_;
  std::vector<std::string> test_order_;
};

}  // namespace mmfuse
