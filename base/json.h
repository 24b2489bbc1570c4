// A small JSON writer: nesting, commas and escaping handled, numbers as %.9g (non-finite ones as
// null, since JSON has no NaN). For the files a person or a script reads back (probe.json, the
// metrics log); there is no reader here beyond the metrics log's own.
//
//   JsonWriter j;
//   j.begin_object().key("iter").value(5).key("loss").value(0.25).end_object();
//   j.str()  // {"iter":5,"loss":0.25}
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <string>
#include <vector>

#include "base/format.h"

namespace mmfuse {

// `s` as a JSON string literal, quotes included.
inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// A number as JSON writes it: %.9g (float32 exactly), null when not finite.
inline std::string json_number(double v) { return std::isfinite(v) ? format_number("%.9g", v) : "null"; }

class JsonWriter {
 public:
  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array() { return close(']'); }
  JsonWriter& key(const std::string& k) {
    comma();
    out_ += json_string(k) + ":";
    after_key_ = true;
    return *this;
  }
  JsonWriter& value(double v) { return raw(json_number(v)); }
  JsonWriter& value(int v) { return raw(std::to_string(v)); }
  JsonWriter& value(int64_t v) { return raw(std::to_string(v)); }
  JsonWriter& value(size_t v) { return raw(std::to_string(v)); }
  JsonWriter& value(bool v) { return raw(v ? "true" : "false"); }
  JsonWriter& value(const std::string& v) { return raw(json_string(v)); }
  JsonWriter& value(const char* v) { return raw(json_string(v)); }
  JsonWriter& value(const std::vector<double>& v) {
    begin_array();
    for (double x : v) value(x);
    return end_array();
  }
  JsonWriter& value(const std::vector<std::string>& v) {
    begin_array();
    for (const auto& x : v) value(x);
    return end_array();
  }
  // Already-formatted JSON (a number, literal or nested document).
  JsonWriter& raw(const std::string& json) {
    comma();
    out_ += json;
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  // A comma before every element but the first of its container, never right after a key.
  void comma() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }
  JsonWriter& open(char c) {
    comma();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  JsonWriter& close(char c) {
    out_ += c;
    if (!first_.empty()) first_.pop_back();
    return *this;
  }

  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

}  // namespace mmfuse
