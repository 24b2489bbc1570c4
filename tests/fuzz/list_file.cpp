// Fuzzes list files (datasets/list_file.h): parse_list_file is what read_list_file runs on a
// file's text; one, two and three modalities.
#include "datasets/list_file.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmfuse;
  const std::string text = fuzz::text_of(data, size);
  for (int modalities = 1; modalities <= 3; ++modalities) {
    std::vector<datasets::ListEntry> entries;
    if (!fuzz::expect_ok_or_error([&] { entries = datasets::parse_list_file(text, modalities, "root", "fuzz.txt"); }))
      continue;
    for (const auto& e : entries)
      if (static_cast<int>(e.paths.size()) != modalities || (e.class_index < 0) == e.label_path.empty() ||
          e.line < 1)
        __builtin_trap();
  }
  return 0;
}
