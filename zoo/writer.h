// The zoo's small prototxt writer (zoo/zoo.cpp, zoo/translation.cpp).
#pragma once
#include <sstream>
#include <string>
#include <vector>

namespace mmfuse::zoo {

inline std::string q(const std::string& s) { return "\"" + s + "\""; }

inline std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

class Proto {
 public:
  // layer { name type bottom... top... <body> }
  void layer(const std::string& name, const std::string& type, const std::vector<std::string>& bottoms,
             const std::vector<std::string>& tops, const std::string& body = "") {
    os_ << "layer {\n  name: " << q(name) << "\n  type: " << q(type) << "\n";
    for (const auto& b : bottoms) os_ << "  bottom: " << q(b) << "\n";
    for (const auto& t : tops) os_ << "  top: " << q(t) << "\n";
    if (!body.empty()) {
      std::istringstream lines(body);
      for (std::string line; std::getline(lines, line);) os_ << "  " << line << "\n";
    }
    os_ << "}\n";
  }
  void raw(const std::string& text) { os_ << text; }
  std::string str() const { return os_.str(); }

 private:
  std::ostringstream os_;
};

}  // namespace mmfuse::zoo
