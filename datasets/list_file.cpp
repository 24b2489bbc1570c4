#include "datasets/list_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"

namespace mmfuse::datasets {

std::vector<ListEntry> parse_list_file(const std::string& text, int modalities, const std::string& root,
                                       const std::string& name) {
  MMF_CHECK(modalities >= 1, Error, "read_list_file('", name, "'): modalities must be >= 1, got ", modalities);
  std::filesystem::path base(root);
  auto join = [&](const std::string& p) {
    std::filesystem::path path(p);
    return (path.is_absolute() ? path : base / path).string();
  };
  std::vector<ListEntry> entries;
  std::istringstream in(text);
  std::string line_text;
  for (int line = 1; std::getline(in, line_text); ++line) {
    std::istringstream words(line_text);
    std::vector<std::string> tokens;
    for (std::string w; words >> w;) tokens.push_back(w);
    if (tokens.empty() || tokens[0][0] == '#') continue;
    MMF_CHECK(static_cast<int>(tokens.size()) == modalities + 1, IOError, name, ":", line, ": expected ",
              modalities, " path", modalities > 1 ? "s" : "", " and a label (path or class index), found ",
              tokens.size(), " field", tokens.size() > 1 ? "s" : "", ": '", line_text, "'");
    ListEntry e;
    e.line = line;
    for (int m = 0; m < modalities; ++m) e.paths.push_back(join(tokens[m]));
    const std::string& label = tokens.back();
    if (label.find_first_not_of("0123456789") == std::string::npos) {
      MMF_CHECK(label.size() <= 9, IOError, name, ":", line, ": class index ", label, " is too large");
      e.class_index = std::stoi(label);
    } else {
      e.label_path = join(label);
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<ListEntry> read_list_file(const std::string& list_path, int modalities, const std::string& root) {
  MMF_CHECK(modalities >= 1, Error, "read_list_file('", list_path, "'): modalities must be >= 1, got ", modalities);
  std::ifstream in(list_path);
  MMF_CHECK(in, IOError, "cannot open list file '", list_path, "': ", std::strerror(errno));
  // Line by line, so that a read error (a directory: EISDIR) sets badbit on `in`.
  std::string text;
  for (std::string line; std::getline(in, line);) text += line + '\n';
  MMF_CHECK(!in.bad(), IOError, "cannot read list file '", list_path, "': ", std::strerror(errno));
  std::string base = root.empty() ? std::filesystem::path(list_path).parent_path().string() : root;
  return parse_list_file(text, modalities, base, list_path);
}

}  // namespace mmfuse::datasets
