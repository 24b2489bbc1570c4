#include "core/html_report.h"

#include <algorithm>
#include <cstdlib>

#include "base/error.h"
#include "core/svg.h"

namespace mmfuse {

namespace {

const char* const kStyle = R"(body{font-family:sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4em 1.2em}
section{margin-top:2em}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f2f2f2}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}
figure svg{max-width:100%;height:auto}
figcaption{color:#555;font-size:.9em}
.gallery{display:flex;flex-wrap:wrap;gap:.6em}
.gallery figure{margin:0;text-align:center}
img.pixelated{image-rendering:pixelated}
)";

// What scripts/check-page reads: errors in data-errors, and data-ready once every section the
// nav lists is found.
const char* const kScript = R"js(window.onerror = function (message, source, line) {
  var d = document.documentElement.dataset;
  d.errors = (d.errors ? d.errors + "\n" : "") + message + " (line " + line + ")";
};
window.addEventListener("load", function () {
  var missing = [];
  document.querySelectorAll("nav a[href^='#']").forEach(function (a) {
    var id = a.getAttribute("href").slice(1);
    if (!document.getElementById(id)) missing.push(id);
  });
  document.documentElement.dataset.ready = missing.length ? "missing:" + missing.join(",") : "ok";
});
)js";

// A table cell that reads as a number ("0.25", "-3", "1e-05", "nan", "12.5%").
bool is_number(const std::string& cell) {
  if (cell.empty()) return false;
  char* end = nullptr;
  std::strtod(cell.c_str(), &end);
  return end != cell.c_str() && (*end == '\0' || (end[0] == '%' && end[1] == '\0'));
}

std::string caption_tag(const std::string& caption) {
  return caption.empty() ? "" : "<figcaption>" + svg::escape(caption) + "</figcaption>";
}

}  // namespace

std::string base64_encode(const std::vector<uint8_t>& bytes) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t group = static_cast<uint32_t>(bytes[i]) << 16;
    if (n > 1) group |= static_cast<uint32_t>(bytes[i + 1]) << 8;
    if (n > 2) group |= bytes[i + 2];
    for (size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[(group >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

std::string png_img_tag(const std::vector<uint8_t>& png, const std::string& alt, int display_width) {
  std::string size = display_width > 0 ? " width=\"" + std::to_string(display_width) + "\" class=\"pixelated\"" : "";
  return "<img src=\"data:image/png;base64," + base64_encode(png) + "\" alt=\"" + svg::escape(alt) + "\"" + size + ">";
}

HtmlReport& HtmlReport::add_section(const std::string& id, const std::string& heading) {
  MMF_CHECK(!id.empty() && id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") ==
                               std::string::npos,
            Error, "HtmlReport: section id '", id, "' must be letters, digits, '-' or '_'");
  for (const auto& s : sections_) MMF_CHECK(s.id != id, Error, "HtmlReport: a second section '", id, "'");
  sections_.push_back({id, heading, ""});
  return *this;
}

std::string& HtmlReport::body() {
  MMF_CHECK(!sections_.empty(), Error, "HtmlReport: content before the first add_section");
  return sections_.back().body;
}

HtmlReport& HtmlReport::paragraph(const std::string& text) {
  body() += "<p>" + svg::escape(text) + "</p>\n";
  return *this;
}

HtmlReport& HtmlReport::raw_html(const std::string& html) {
  body() += html + "\n";
  return *this;
}

HtmlReport& HtmlReport::table(const std::vector<std::string>& headers,
                              const std::vector<std::vector<std::string>>& rows, bool align_numbers) {
  std::string t = "<table>\n<thead><tr>";
  for (const auto& h : headers) t += "<th>" + svg::escape(h) + "</th>";
  t += "</tr></thead>\n<tbody>\n";
  for (size_t r = 0; r < rows.size(); ++r) {
    MMF_CHECK(rows[r].size() == headers.size(), Error, "HtmlReport::table: row ", r, " has ", rows[r].size(),
              " cells for ", headers.size(), " headers");
    t += "<tr>";
    for (const auto& cell : rows[r])
      t += (align_numbers && is_number(cell) ? "<td class=\"num\">" : "<td>") + svg::escape(cell) + "</td>";
    t += "</tr>\n";
  }
  body() += t + "</tbody>\n</table>\n";
  return *this;
}

HtmlReport& HtmlReport::figure(const std::string& svg, const std::string& caption) {
  body() += "<figure>\n" + svg + caption_tag(caption) + "</figure>\n";
  return *this;
}

HtmlReport& HtmlReport::image(const std::vector<uint8_t>& png, const std::string& caption, int display_width) {
  body() += "<figure>" + png_img_tag(png, caption, display_width) + caption_tag(caption) + "</figure>\n";
  return *this;
}

HtmlReport& HtmlReport::gallery(const std::vector<std::pair<std::vector<uint8_t>, std::string>>& labelled_pngs,
                                const std::string& caption, int display_width) {
  std::string g = "<figure>\n<div class=\"gallery\">\n";
  for (const auto& [png, label] : labelled_pngs)
    g += "<figure>" + png_img_tag(png, label, display_width) + caption_tag(label) + "</figure>\n";
  body() += g + "</div>" + caption_tag(caption) + "</figure>\n";
  return *this;
}

std::string HtmlReport::html() const {
  std::string page = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                     svg::escape(title_) + "</title>\n<style>\n" + kStyle + "</style>\n<script>\n" + kScript +
                     "</script>\n</head>\n<body>\n<h1>" + svg::escape(title_) + "</h1>\n<nav>\n<ul>\n";
  for (const auto& s : sections_)
    page += "<li><a href=\"#" + s.id + "\">" + svg::escape(s.heading) + "</a></li>\n";
  page += "</ul>\n</nav>\n";
  for (const auto& s : sections_)
    page += "<section id=\"" + s.id + "\">\n<h2>" + svg::escape(s.heading) + "</h2>\n" + s.body + "</section>\n";
  return page + "</body>\n</html>\n";
}

void HtmlReport::write(const std::string& path) const { svg::write_file(path, html()); }

}  // namespace mmfuse
