#include "datasets/list_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace mmfuse::datasets {

std::vector<ListEntry> read_list_file(const std::string& list_path, int modalities, const std::string& root) {
  MMF_CHECK(modalities >= 1, Error, "read_list_file('", list_path, "'): modalities must be >= 1, got ", modalities);
  std::ifstream in(list_path);
  MMF_CHECK(in, IOError, "cannot open list file '", list_path, "': ", std::strerror(errno));
  std::filesystem::path base = root.empty() ? std::filesystem::path(list_path).parent_path() : std::filesystem::path(root);
  auto join = [&](const std::string& p) {
    std::filesystem::path path(p);
    return (path.is_absolute() ? path : base / path).string();
  };
  std::vector<ListEntry> entries;
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    std::istringstream words(text);
    std::vector<std::string> tokens;
    for (std::string w; words >> w;) tokens.push_back(w);
    if (tokens.empty() || tokens[0][0] == '#') continue;
    MMF_CHECK(static_cast<int>(tokens.size()) == modalities + 1, IOError, list_path, ":", line, ": expected ",
              modalities, " path", modalities > 1 ? "s" : "", " and a label (path or class index), found ",
              tokens.size(), " field", tokens.size() > 1 ? "s" : "", ": '", text, "'");
    ListEntry e;
    e.line = line;
    for (int m = 0; m < modalities; ++m) e.paths.push_back(join(tokens[m]));
    const std::string& label = tokens.back();
    if (label.find_first_not_of("0123456789") == std::string::npos) {
      MMF_CHECK(label.size() <= 9, IOError, list_path, ":", line, ": class index ", label, " is too large");
      e.class_index = std::stoi(label);
    } else {
      e.label_path = join(label);
    }
    entries.push_back(std::move(e));
  }
  MMF_CHECK(!in.bad(), IOError, "cannot read list file '", list_path, "': ", std::strerror(errno));
  return entries;
}

}  // namespace mmfuse::datasets
