// printf formatting of one number into a std::string, for the console tables and the JSONL
// metrics (core/solver.cpp, core/evaluate.cpp, core/metrics_log.cpp).
#pragma once
#include <cstdio>
#include <string>

namespace mmfuse {

// `format` holds one conversion that takes a double ("%g", "%.9g", "%7.2f"); 63 characters at most.
inline std::string format_number(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace mmfuse
