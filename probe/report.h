// What `mmfuse probe` writes: probe.json (schema in docs/probe.md), index.html (one
// self-contained page: tables, SVG charts, the feature images inlined) and a short terminal
// summary.
#pragma once
#include <string>

#include "probe/probe.h"

namespace mmfuse::probe {

// The name of modality m ("modality m" beyond the known names): the labels of the summary and
// the page.
std::string modality_name(const ProbeResult& result, int m);
// The whole result as JSON (the images by file name; they are written beside it).
std::string probe_json(const ProbeResult& result);
// The most telling numbers, one per line (at most five), for the terminal.
std::string probe_summary(const ProbeResult& result);
// The page, as one string.
std::string probe_html(const ProbeResult& result);
// Writes DIR/probe.json, DIR/index.html and DIR/images/*.png (IOError on failure).
void write_probe(const ProbeResult& result, const std::string& dir);

}  // namespace mmfuse::probe
