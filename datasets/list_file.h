// List files: one sample per line, whitespace-separated -- one path per modality, then either a
// label image path (segmentation) or a class index (classification). Paths are relative to the
// list's root folder (by default the folder holding the list). Blank lines and lines starting
// with '#' are skipped. Format and examples: docs/datasets.md.
#pragma once
#include <string>
#include <vector>

namespace mmfuse::datasets {

struct ListEntry {
  std::vector<std::string> paths;  // one per modality, joined to the root
  std::string label_path;          // segmentation: the label image, joined to the root
  int class_index = -1;            // classification: the class, else -1
  int line = 0;                    // 1-based line in the list file, for error messages
};

// Reads `list_path` expecting `modalities` paths and a label per line. A label token made of
// digits only is a class index, anything else a label path. `root` empty = the list's folder.
// Throws IOError naming the file and line for a missing file or a malformed line.
std::vector<ListEntry> read_list_file(const std::string& list_path, int modalities, const std::string& root = "");
// The same from the list's text: paths are joined to `root` (empty: left relative); `name`
// stands for the file in messages.
std::vector<ListEntry> parse_list_file(const std::string& text, int modalities, const std::string& root,
                                       const std::string& name);

}  // namespace mmfuse::datasets
