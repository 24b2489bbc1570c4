// One self-contained HTML page (opens from disk: no server, no network, no external file) for
// `mmfuse probe`: sections listed in a nav at the top, each holding paragraphs, tables, SVG
// figures (core/svg.h) and PNG images embedded as base64 data: URIs; inline CSS only.
//
// A small inline script lets a headless browser check the page (scripts/check-page):
// `window.onerror` appends each error to <html data-errors="...">, and on load the script sets
// <html data-ready="ok">, or "missing:<ids>" when a section the nav lists is not in the page.
// Nothing else depends on it: the page reads the same with JavaScript off.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mmfuse {

// RFC 4648 base64 (standard alphabet, '=' padding).
std::string base64_encode(const std::vector<uint8_t>& bytes);
// An <img> of PNG bytes as a data: URI; `display_width` > 0 scales it (pixelated: feature maps).
std::string png_img_tag(const std::vector<uint8_t>& png, const std::string& alt, int display_width = 0);

class HtmlReport {
 public:
  explicit HtmlReport(std::string title) : title_(std::move(title)) {}

  // Starts a section; the calls below add to the latest one. `id` (letters, digits, '-', '_')
  // is its anchor and must be new; Error otherwise, and for content before any section.
  HtmlReport& add_section(const std::string& id, const std::string& heading);
  HtmlReport& paragraph(const std::string& text);  // text is escaped
  HtmlReport& raw_html(const std::string& html);   // inserted as it is
  // A table; with `align_numbers`, cells that read as numbers are right-aligned. Error when a
  // row has another number of cells than `headers`.
  HtmlReport& table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows,
                    bool align_numbers = true);
  // An SVG (core/svg.h) inline, with an optional caption.
  HtmlReport& figure(const std::string& svg, const std::string& caption = "");
  // A PNG embedded as a data: URI, with an optional caption.
  HtmlReport& image(const std::vector<uint8_t>& png, const std::string& caption = "", int display_width = 0);
  // Small PNGs side by side, each with its label (e.g. the channels of a feature map).
  HtmlReport& gallery(const std::vector<std::pair<std::vector<uint8_t>, std::string>>& labelled_pngs,
                      const std::string& caption = "", int display_width = 96);

  // The whole page.
  std::string html() const;
  // Writes the page to `path` (its folder must exist); IOError when it cannot.
  void write(const std::string& path) const;

 private:
  struct Section {
    std::string id, heading, body;
  };
  std::string& body();

  std::string title_;
  std::vector<Section> sections_;
};

}  // namespace mmfuse
