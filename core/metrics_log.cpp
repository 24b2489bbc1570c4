#include "core/metrics_log.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "base/error.h"
#include "base/format.h"
#include "base/json.h"
#include "core/svg.h"

namespace mmfuse {

namespace fs = std::filesystem;

namespace {

// "outputs":{"name":value,...}
std::string json_outputs(const std::vector<std::pair<std::string, double>>& outputs) {
  std::string json = "\"outputs\":{";
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (i) json += ',';
    json += json_string(outputs[i].first) + ":" + json_number(outputs[i].second);
  }
  return json + "}";
}

// A metrics record read back: numbers (null: NaN) and nested objects, keys in order.
struct Json {
  double number = std::nan("");
  std::vector<std::string> keys;  // an object's members (a vector of pairs of the incomplete
  std::vector<Json> values;       // type itself is a libstdc++ extension clang refuses)
  const Json* get(const std::string& key) const {
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &values[i];
    return nullptr;
  }
};

// Parses what MetricsLog writes (objects, arrays of numbers, strings as keys, numbers, null);
// false on anything else. An array's elements are `values` with no keys.
bool parse_json(const char*& p, Json& out) {
  auto skip = [&] { while (*p == ' ') ++p; };
  auto str = [&](std::string& s) {
    if (*p != '"') return false;
    for (++p; *p && *p != '"'; ++p) {
      if (*p == '\\' && p[1]) ++p;
      s += *p;
    }
    return *p == '"' && (++p, true);
  };
  skip();
  if (*p == '{') {
    ++p;
    skip();
    if (*p == '}') return ++p, true;
    for (;;) {
      std::string key;
      skip();
      if (!str(key)) return false;
      skip();
      if (*p++ != ':') return false;
      Json v;
      if (!parse_json(p, v)) return false;
      out.keys.push_back(std::move(key));
      out.values.push_back(std::move(v));
      skip();
      if (*p == ',') { ++p; continue; }
      return *p == '}' && (++p, true);
    }
  }
  if (*p == '[') {
    ++p;
    skip();
    if (*p == ']') return ++p, true;
    for (;;) {
      Json v;
      if (!parse_json(p, v)) return false;
      out.values.push_back(std::move(v));
      skip();
      if (*p == ',') { ++p; continue; }
      return *p == ']' && (++p, true);
    }
  }
  if (std::strncmp(p, "null", 4) == 0) return p += 4, true;
  char* end = nullptr;
  out.number = std::strtod(p, &end);
  if (end == p) return false;
  p = end;
  return true;
}

// The value of "iter" in a metrics record, or -1.
int64_t record_iter(const std::string& line) {
  size_t at = line.find("\"iter\":");
  return at == std::string::npos ? -1 : std::atoll(line.c_str() + at + 7);
}

// The series prefix of test net `net` of `nets`.
std::string test_prefix(size_t net, size_t nets) { return nets > 1 ? "test" + std::to_string(net) + " " : "test "; }

}  // namespace

double resident_set_mb() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages = 0, resident = 0;
  int n = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

bool record_number(const std::string& line, const std::string& key, double& value) {
  Json record;
  const char* p = line.c_str();
  if (!parse_json(p, record)) return false;
  const Json* v = record.get(key);
  if (!v || !v->keys.empty()) return false;
  value = v->number;
  return true;
}

bool record_array(const std::string& line, const std::string& object, const std::string& key,
                  std::vector<double>& values) {
  Json record;
  const char* p = line.c_str();
  if (!parse_json(p, record)) return false;
  const Json* o = record.get(object);
  const Json* v = o ? o->get(key) : nullptr;
  if (!v || !v->keys.empty()) return false;
  values.clear();
  for (const Json& e : v->values) values.push_back(e.number);
  return true;
}

void create_parent(const std::string& file) {
  fs::path dir = fs::path(file).parent_path();
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  MMF_CHECK(!ec, IOError, dir.string(), ": cannot create the folder (", ec.message(), ")");
}

// ---- MetricsLog ------------------------------------------------------------------------------

void MetricsLog::resume_at(int64_t iter) {
  resumed_ = true;
  resumed_at_ = iter;
}

void MetricsLog::write(const std::string& line) {
  if (!started_) {
    create_parent(path_);
    if (resumed_) {
      // After a resume from iteration k the log keeps the records before k: the run repeats
      // the rest (a crash after the snapshot left them there).
      std::vector<std::string> kept;
      std::ifstream in(path_);
      for (std::string l; std::getline(in, l);)
        if (record_iter(l) < resumed_at_) kept.push_back(l);
      std::string tmp = path_ + ".tmp";
      std::FILE* f = std::fopen(tmp.c_str(), "w");
      MMF_CHECK(f != nullptr, IOError, tmp, ": cannot open for writing");
      for (const auto& l : kept) std::fprintf(f, "%s\n", l.c_str());
      bool ok = std::fclose(f) == 0;
      MMF_CHECK(ok && std::rename(tmp.c_str(), path_.c_str()) == 0, IOError, path_, ": cannot rewrite the log");
    }
  }
  const char* mode = (resumed_ || started_) ? "a" : "w";
  std::FILE* f = std::fopen(path_.c_str(), mode);
  MMF_CHECK(f != nullptr, IOError, path_, ": cannot open for writing");
  std::fprintf(f, "%s\n", line.c_str());
  std::fclose(f);
  started_ = true;
}

void MetricsLog::write_train(int64_t iter, double lr, double loss,
                             const std::vector<std::pair<std::string, double>>& outputs, double grad_norm,
                             double samples_per_s, double elapsed_s,
                             const std::vector<std::pair<std::string, std::vector<double>>>& layers) {
  std::string figures;
  if (!layers.empty()) {
    JsonWriter j;
    j.begin_object();
    for (const auto& [name, values] : layers) j.key(name).value(values);
    figures = ",\"layers\":" + j.end_object().str();
  }
  write("{\"iter\":" + std::to_string(iter) + ",\"lr\":" + json_number(lr) + ",\"loss\":" + json_number(loss) + "," +
        json_outputs(outputs) + ",\"grad_norm\":" + json_number(grad_norm) + ",\"samples_per_s\":" +
        json_number(samples_per_s) + ",\"rss_mb\":" + json_number(resident_set_mb()) + ",\"elapsed_s\":" + json_number(elapsed_s) +
        figures + "}");
}

void MetricsLog::write_test(int64_t iter, size_t net, const TestResult& r) {
  std::string json = "{\"phase\":\"test\",\"iter\":" + std::to_string(iter) + ",\"net\":" + std::to_string(net) +
                     "," + json_outputs(r.outputs);
  if (!r.segmentation.empty()) {
    json += ",\"segmentation\":{";
    for (size_t k = 0; k < r.segmentation.size(); ++k) {
      const auto& s = r.segmentation[k];
      if (k) json += ',';
      json += json_string(s.name) + ":{\"pixel_acc\":" + json_number(s.pixel_accuracy) +
              ",\"mean_acc\":" + json_number(s.mean_accuracy) + ",\"miou\":" + json_number(s.mean_iou) + "}";
    }
    json += "}";
  }
  write(json + "}");
}

// ---- TrainingCurve ---------------------------------------------------------------------------

void TrainingCurve::add(const std::string& key, double iter, double value) {
  if (!tests_.count(key)) test_order_.push_back(key);
  tests_[key].emplace_back(iter, value);
}

void TrainingCurve::add_test(int64_t iter, size_t net, size_t nets, const TestResult& r) {
  const std::string pre = test_prefix(net, nets);
  for (const auto& [n, v] : r.outputs) add(pre + n, static_cast<double>(iter), v);
  for (const auto& s : r.segmentation) add(pre + s.name + " mIoU", static_cast<double>(iter), s.mean_iou);
}

void TrainingCurve::reload(const std::string& path, int64_t before, size_t nets) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (record_iter(line) >= before) continue;
    Json r;
    const char* p = line.c_str();
    if (!parse_json(p, r) || !r.get("iter")) continue;
    const double it = r.get("iter")->number;
    if (!r.get("phase")) {
      if (const Json* loss = r.get("loss")) train_.emplace_back(it, loss->number);
      continue;
    }
    const Json* net = r.get("net");
    std::string pre = nets > 1 && net ? "test" + std::to_string(static_cast<int>(net->number)) + " " : "test ";
    if (const Json* outs = r.get("outputs"))
      for (size_t i = 0; i < outs->keys.size(); ++i) add(pre + outs->keys[i], it, outs->values[i].number);
    if (const Json* seg = r.get("segmentation"))
      for (size_t i = 0; i < seg->keys.size(); ++i)
        if (const Json* m = seg->values[i].get("miou")) add(pre + seg->keys[i] + " mIoU", it, m->number);
  }
}

std::string TrainingCurve::to_svg() const {
  std::vector<svg::Series> losses, metrics;
  if (!train_.empty()) losses.push_back({"train loss (smoothed)", train_});
  for (const auto& key : test_order_) {
    bool is_loss = key.find("loss") != std::string::npos;
    (is_loss ? losses : metrics).push_back({key, tests_.at(key)});
  }
  if (losses.empty() && metrics.empty()) return "";
  // Both panels share the iterations axis.
  double first = std::numeric_limits<double>::infinity(), last = -first;
  for (const auto* list : {&losses, &metrics})
    for (const auto& s : *list)
      for (const auto& point : s.points) first = std::min(first, point.first), last = std::max(last, point.first);
  svg::LineChartOptions top;
  top.title = "loss";
  top.min_left_margin = 64;
  top.x_range = {{first, std::max(last, first + 1)}};
  if (metrics.empty()) {
    top.height = 600, top.x_label = "iteration";
    return svg::line_chart(losses, top);
  }
  svg::LineChartOptions bottom = top;
  bottom.title = "test metrics", bottom.x_label = "iteration", bottom.colour_offset = losses.size();
  return svg::stack({svg::line_chart(losses, top), svg::line_chart(metrics, bottom)});
}

void TrainingCurve::write(const std::string& path) const {
  const std::string figure = to_svg();
  if (figure.empty()) return;
  create_parent(path);
  svg::write_file(path, figure);
}

}  // namespace mmfuse
