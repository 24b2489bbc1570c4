#include "core/svg.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "base/error.h"
#include "base/format.h"

namespace mmfuse::svg {

namespace {

const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                "#9467bd", "#8c564b", "#e377c2", "#17becf"};
const char* colour(size_t i) { return kPalette[i % (sizeof kPalette / sizeof kPalette[0])]; }

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kFont = 12;  // px; tick labels and legend

// A coordinate: one decimal, no trailing ".0" (keeps files small and byte-stable).
std::string px(double v) {
  std::string s = format_number("%.1f", v);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s == "-0" ? "0" : s;
}

// A rough width of `text` (UTF-8) at `size` px in a sans-serif font: the layout's margins.
double text_width(const std::string& text, double size = kFont) {
  size_t chars = 0;
  for (unsigned char c : text) chars += (c & 0xC0) != 0x80;
  return 0.6 * size * static_cast<double>(chars);
}

std::string open_svg(double width, double height) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + px(width) + "\" height=\"" + px(height) +
         "\" viewBox=\"0 0 " + px(width) + " " + px(height) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
}

// <text> at (x, y); `extra` holds further attributes.
std::string text(double x, double y, const std::string& s, const char* anchor = "start",
                 const std::string& extra = "") {
  return "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\" text-anchor=\"" + anchor + "\"" + extra + ">" + escape(s) +
         "</text>\n";
}

std::string title_tag(const std::string& s) { return "<title>" + escape(s) + "</title>"; }

// The plot area of a chart and the map from data to pixels on each axis.
struct Frame {
  double x0, y0, x1, y1;
  double xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  double x(double v) const { return x0 + (v - xlo) / (xhi - xlo) * (x1 - x0); }
  double y(double v) const { return y1 - (v - ylo) / (yhi - ylo) * (y1 - y0); }
};

// The margins around the plot area for the title, axis labels and the y tick labels.
Frame frame(int width, int height, const std::string& title, const std::string& x_label, const std::string& y_label,
            const Ticks& yt, double min_left = 0) {
  const double bottom_labels = 18;
  double widest = 0;
  for (double v : yt.values) widest = std::max(widest, text_width(tick_label(v, yt.step)));
  Frame f{std::max(min_left, widest + 12 + (y_label.empty() ? 0 : 20)), title.empty() ? 12.0 : 32.0, width - 16.0,
          height - 8 - bottom_labels - (x_label.empty() ? 0 : 18)};
  f.ylo = yt.lo, f.yhi = yt.hi;
  return f;
}

// Title, axis labels, the y grid with its tick labels and the left axis line.
std::string frame_decor(const Frame& f, int height, const std::string& title, const std::string& x_label,
                        const std::string& y_label, const Ticks& yt) {
  std::string out;
  if (!title.empty()) out += text(f.x0, 20, title, "start", " font-size=\"14\" font-weight=\"bold\"");
  if (!x_label.empty()) out += text((f.x0 + f.x1) / 2, height - 8, x_label, "middle");
  if (!y_label.empty())
    out += text(14, (f.y0 + f.y1) / 2, y_label, "middle",
                " transform=\"rotate(-90 14 " + px((f.y0 + f.y1) / 2) + ")\"");
  for (double v : yt.values) {
    const std::string y = px(f.y(v));
    out += "<line x1=\"" + px(f.x0) + "\" y1=\"" + y + "\" x2=\"" + px(f.x1) + "\" y2=\"" + y +
           "\" stroke=\"#e1e1e1\"/>\n";
    out += text(f.x0 - 6, f.y(v) + 4, tick_label(v, yt.step), "end");
  }
  out += "<line x1=\"" + px(f.x0) + "\" y1=\"" + px(f.y0) + "\" x2=\"" + px(f.x0) + "\" y2=\"" + px(f.y1) +
         "\" stroke=\"black\"/>\n";
  return out;
}

// A nested <svg> over the plot area (4 px more each side) that clips what a fixed range leaves
// out; its viewBox keeps the outer coordinates.
std::string clip_open(const Frame& f) {
  const double x = f.x0 - 4, y = f.y0 - 4, w = f.x1 - f.x0 + 8, h = f.y1 - f.y0 + 8;
  return "<svg x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(w) + "\" height=\"" + px(h) + "\" viewBox=\"" +
         px(x) + " " + px(y) + " " + px(w) + " " + px(h) + "\">\n";
}

using Pixels = std::vector<std::pair<double, double>>;

// A legend box, a swatch and a name per entry, in the corner of the plot area that covers the
// fewest of `avoid` (pixels of the data; top right on a tie).
std::string legend(const Frame& f, const std::vector<std::pair<std::string, const char*>>& entries,
                   const Pixels& avoid) {
  if (entries.empty()) return "";
  double widest = 0;
  for (const auto& e : entries) widest = std::max(widest, text_width(e.first));
  const double w = widest + 34, h = 16.0 * static_cast<double>(entries.size()) + 6;
  double x = f.x1 - w - 4, y = f.y0 + 4;
  size_t fewest = avoid.size() + 1;
  for (const auto& [cx, cy] : {std::pair{f.x1 - w - 4, f.y0 + 4}, {f.x0 + 4, f.y0 + 4}, {f.x1 - w - 4, f.y1 - h - 4},
                               {f.x0 + 4, f.y1 - h - 4}}) {
    size_t covered = 0;
    for (const auto& [px_, py_] : avoid) covered += px_ >= cx && px_ <= cx + w && py_ >= cy && py_ <= cy + h;
    if (covered < fewest) fewest = covered, x = cx, y = cy;
  }
  std::string out = "<g class=\"legend\">\n<rect x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(w) +
                    "\" height=\"" + px(h) + "\" fill=\"white\" fill-opacity=\"0.85\" " +
                    "stroke=\"#bbbbbb\"/>\n";
  for (size_t i = 0; i < entries.size(); ++i) {
    const double ey = y + 14 + 16.0 * i;
    out += "<rect x=\"" + px(x + 6) + "\" y=\"" + px(ey - 6) + "\" width=\"16\" height=\"4\" fill=\"" +
           entries[i].second + "\"/>\n";
    out += text(x + 28, ey, entries[i].first);
  }
  return out + "</g>\n";
}

// Labels every k-th of `n` items, k such that at most `max_labels` are shown and each has
// `room` px at a label size of `need` px.
size_t label_stride(size_t n, size_t max_labels, double room, double need) {
  size_t k = std::max<size_t>(1, (n + std::max<size_t>(max_labels, 1) - 1) / std::max<size_t>(max_labels, 1));
  if (room > 0 && room < need) k = std::max(k, static_cast<size_t>(std::ceil(need / room)));
  return k;
}

}  // namespace

std::string escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return format_number("%.4g", v == 0 ? 0.0 : v);  // no "-0"
}

Ticks nice_ticks(double lo, double hi, int target, bool expand) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo <= std::abs(hi) * 1e-12) {  // one value: a unit around it (a tenth of it, if large)
    const double half = lo == 0 ? 0.5 : std::max(0.5, std::abs(lo) * 0.05);
    lo -= half, hi += half;
  }
  const double raw = (hi - lo) / std::max(target, 1);
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  const double f = raw / mag;
  Ticks t;
  t.step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
  // Ticks are k * step for integer k: no drift from repeated additions.
  const double eps = 1e-9;
  const double first = expand ? std::floor(lo / t.step + eps) : std::ceil(lo / t.step - eps);
  const double last = expand ? std::ceil(hi / t.step - eps) : std::floor(hi / t.step + eps);
  for (double k = first; k <= last; ++k) t.values.push_back(k == 0 ? 0.0 : k * t.step);
  t.lo = expand ? first * t.step : lo;
  t.hi = expand ? last * t.step : hi;
  return t;
}

std::string tick_label(double v, double step) {
  if (std::abs(v) < std::abs(step) * 1e-9) v = 0;  // no "-0.0" or "1e-17"
  const double a = std::max(std::abs(v), std::abs(step));
  if (a >= 1e6 || std::abs(step) < 1e-4) return format_number("%.3g", v);
  int decimals = 0;  // the fewest that show the step exactly (0.25: 2)
  while (decimals < 6 && std::abs(step * std::pow(10, decimals) - std::round(step * std::pow(10, decimals))) > 1e-6)
    ++decimals;
  return format_number(("%." + std::to_string(decimals) + "f").c_str(), v);
}

// ---- line chart ------------------------------------------------------------------------------

std::string line_chart(const std::vector<Series>& series, const LineChartOptions& o) {
  double xmin = kInf, xmax = -kInf, ymin = kInf, ymax = -kInf;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y))
        xmin = std::min(xmin, x), xmax = std::max(xmax, x), ymin = std::min(ymin, y), ymax = std::max(ymax, y);
  if (o.x_range) xmin = o.x_range->first, xmax = o.x_range->second;
  if (!(xmin < xmax)) {  // no points, or one x: a unit around it
    if (!std::isfinite(xmin)) xmin = xmax = 0;
    xmin -= 0.5, xmax += 0.5;
  }
  Ticks yt = o.y_range ? nice_ticks(o.y_range->first, o.y_range->second, 5, false) : nice_ticks(ymin, ymax, 5, true);
  Frame f = frame(o.width, o.height, o.title, o.x_label, o.y_label, yt, o.min_left_margin);
  const int x_target = std::max(2, static_cast<int>((f.x1 - f.x0) / 100));
  const Ticks xt = nice_ticks(xmin, xmax, x_target, false);
  f.xlo = xmin, f.xhi = xmax;

  std::string out = open_svg(o.width, o.height) + frame_decor(f, o.height, o.title, o.x_label, o.y_label, yt);
  for (double v : xt.values) {
    const std::string x = px(f.x(v));
    out += "<line x1=\"" + x + "\" y1=\"" + px(f.y0) + "\" x2=\"" + x + "\" y2=\"" + px(f.y1) +
           "\" stroke=\"#e1e1e1\"/>\n";
    out += text(f.x(v), f.y1 + 16, tick_label(v, xt.step), "middle");
  }
  out += "<line x1=\"" + px(f.x0) + "\" y1=\"" + px(f.y1) + "\" x2=\"" + px(f.x1) + "\" y2=\"" + px(f.y1) +
         "\" stroke=\"black\"/>\n" + clip_open(f);
  std::vector<std::pair<std::string, const char*>> entries;
  Pixels drawn;  // the points and the lines between them, every few pixels: what the legend avoids
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const char* c = colour(i + o.colour_offset);
    if (!s.name.empty()) entries.emplace_back(s.name, c);
    std::string d, markers;
    bool drawing = false;  // the previous point was finite: continue its line
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) {
        drawing = false;
        continue;
      }
      if (!d.empty()) d += ' ';
      d += drawing ? 'L' : 'M';
      const std::pair<double, double> at{f.x(x), f.y(y)};
      const auto from = drawing ? drawn.back() : at;
      const double steps = std::max(1.0, std::ceil(std::hypot(at.first - from.first, at.second - from.second) / 8));
      for (double k = 1; k <= steps; ++k)
        drawn.emplace_back(from.first + (at.first - from.first) * k / steps,
                           from.second + (at.second - from.second) * k / steps);
      d += px(at.first) + " " + px(at.second);
      drawing = true;
      if (s.points.size() < o.markers_below)
        markers += "<circle cx=\"" + px(at.first) + "\" cy=\"" + px(at.second) + "\" r=\"3\">" +
                   title_tag(s.name + ": " + format_value(x) + ", " + format_value(y)) + "</circle>\n";
    }
    out += "<g class=\"series\" fill=\"" + std::string(c) + "\">" + title_tag(s.name) + "\n";
    if (!d.empty())
      out += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + c +
             "\" stroke-width=\"2\" stroke-linejoin=\"round\"/>\n";
    out += markers + "</g>\n";
  }
  return out + "</svg>\n" + legend(f, entries, drawn) + "</svg>\n";
}

// ---- grouped bar chart -----------------------------------------------------------------------

std::string bar_chart(const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                      const BarChartOptions& o) {
  double lo = 0, hi = 0;  // bars grow from 0: the axis always holds it
  for (const auto& s : series) {
    MMF_CHECK(s.values.size() == categories.size(), Error, "svg::bar_chart: series '", s.name, "' has ",
              s.values.size(), " values for ", categories.size(), " categories");
    for (double v : s.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  const Ticks yt = o.y_range ? nice_ticks(o.y_range->first, o.y_range->second, 5, false) : nice_ticks(lo, hi, 5, true);
  Frame f = frame(o.width, o.height, o.title, "", o.y_label, yt);
  std::string out = open_svg(o.width, o.height) + frame_decor(f, o.height, o.title, "", o.y_label, yt);
  const size_t n = std::max<size_t>(categories.size(), 1);
  const double group = (f.x1 - f.x0) / static_cast<double>(n);
  const double bar = group * 0.8 / static_cast<double>(std::max<size_t>(series.size(), 1));
  double widest = 0;
  for (const auto& c : categories) widest = std::max(widest, text_width(c));
  const size_t stride = label_stride(categories.size(), categories.size(), group, widest + 8);
  for (size_t k = 0; k < categories.size(); k += stride)
    out += text(f.x0 + group * (static_cast<double>(k) + 0.5), f.y1 + 16, categories[k], "middle");
  const double zero = std::clamp(f.y(0), f.y0, f.y1);
  out += clip_open(f);
  std::vector<std::pair<std::string, const char*>> entries;
  Pixels drawn;  // the bars' outer ends, for the legend to avoid
  for (size_t i = 0; i < series.size(); ++i) {
    const char* c = colour(i);
    if (!series[i].name.empty()) entries.emplace_back(series[i].name, c);
    out += "<g class=\"series\" fill=\"" + std::string(c) + "\">\n";
    for (size_t k = 0; k < categories.size(); ++k) {
      const double v = series[i].values[k];
      if (!std::isfinite(v)) continue;
      const double x = f.x0 + group * (static_cast<double>(k) + 0.1) + bar * static_cast<double>(i);
      const double top = std::min(zero, f.y(v)), height = std::abs(f.y(v) - zero);
      const double label = o.value_labels ? 14 : 0;  // the value label beyond the bar's end
      for (double dy = -label; dy <= height + label; dy += 8)
        for (double dx : {0.0, bar / 2, bar}) drawn.emplace_back(x + dx, v < 0 ? top + dy : top + height - dy);
      out += "<rect x=\"" + px(x) + "\" y=\"" + px(top) + "\" width=\"" + px(bar) + "\" height=\"" + px(height) +
             "\">" + title_tag(categories[k] + (series[i].name.empty() ? "" : " / " + series[i].name) + ": " +
                               format_value(v)) + "</rect>\n";
      if (o.value_labels)
        out += text(x + bar / 2, v < 0 ? f.y(v) + 12 : f.y(v) - 4, format_value(v), "middle",
                    " font-size=\"10\" fill=\"black\"");
    }
    out += "</g>\n";
  }
  out += "</svg>\n<line x1=\"" + px(f.x0) + "\" y1=\"" + px(zero) + "\" x2=\"" + px(f.x1) + "\" y2=\"" + px(zero) +
         "\" stroke=\"black\"/>\n";
  return out + legend(f, entries, drawn) + "</svg>\n";
}

// ---- heatmap ---------------------------------------------------------------------------------

std::string scale_colour(ColourScale scale, double t) {
  static const unsigned kViridis[] = {0x440154, 0x472d7b, 0x3b528b, 0x2c728e, 0x21918c,
                                      0x28ae80, 0x5ec962, 0xaddc30, 0xfde725};
  static const unsigned kBlueRed[] = {0x2166ac, 0x67a9cf, 0xd1e5f0, 0xf7f7f7, 0xfddbc7, 0xef8a62, 0xb2182b};
  if (std::isnan(t)) return "#c8c8c8";
  const unsigned* stops = scale == ColourScale::sequential ? kViridis : kBlueRed;
  const size_t n = scale == ColourScale::sequential ? 9 : 7;
  const double at = std::clamp(t, 0.0, 1.0) * static_cast<double>(n - 1);
  const size_t i = std::min(static_cast<size_t>(at), n - 2);
  const double w = at - static_cast<double>(i);
  unsigned rgb = 0;
  for (int shift = 16; shift >= 0; shift -= 8) {
    const double a = (stops[i] >> shift) & 0xff, b = (stops[i + 1] >> shift) & 0xff;
    rgb |= static_cast<unsigned>(std::lround(a + (b - a) * w)) << shift;
  }
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%06x", rgb);
  return buf;
}

std::string heatmap(const std::vector<std::vector<double>>& values, const std::vector<std::string>& row_labels,
                    const std::vector<std::string>& col_labels, const HeatmapOptions& o) {
  const size_t rows = values.size(), cols = col_labels.size();
  MMF_CHECK(row_labels.size() == rows, Error, "svg::heatmap: ", row_labels.size(), " row labels for ", rows, " rows");
  double lo = kInf, hi = -kInf;
  for (size_t r = 0; r < rows; ++r) {
    MMF_CHECK(values[r].size() == cols, Error, "svg::heatmap: row ", r, " has ", values[r].size(), " values for ",
              cols, " column labels");
    for (double v : values[r])
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (o.scale == ColourScale::diverging && !(o.min && o.max)) {
    const double half = std::max({std::abs(hi - o.centre), std::abs(o.centre - lo), 1e-12});
    lo = o.centre - half, hi = o.centre + half;
  }
  if (o.min) lo = *o.min;
  if (o.max) hi = *o.max;
  if (!(hi > lo)) hi = lo + 1;

  double row_w = 0, col_w = 0;
  for (const auto& l : row_labels) row_w = std::max(row_w, text_width(l, 11));
  for (const auto& l : col_labels) col_w = std::max(col_w, text_width(l, 11));
  const double left = std::min(row_w, o.width * 0.3) + 8, top = o.title.empty() ? 8.0 : 32.0;
  const double bottom = std::min(col_w, o.height * 0.3) * 0.71 + 16, legend_w = 80;
  const double cell_w = (o.width - left - legend_w) / static_cast<double>(std::max<size_t>(cols, 1));
  const double cell_h = (o.height - top - bottom) / static_cast<double>(std::max<size_t>(rows, 1));
  const double y1 = top + cell_h * static_cast<double>(rows);

  std::string out = open_svg(o.width, o.height);
  if (!o.title.empty()) out += text(left, 20, o.title, "start", " font-size=\"14\" font-weight=\"bold\"");
  out += "<g class=\"cells\" shape-rendering=\"crispEdges\">\n";
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) {
      const double v = values[r][c], t = (v - lo) / (hi - lo);
      const double x = left + cell_w * static_cast<double>(c), y = top + cell_h * static_cast<double>(r);
      out += "<rect x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(cell_w) + "\" height=\"" + px(cell_h) +
             "\" fill=\"" + scale_colour(o.scale, std::isfinite(v) ? t : std::nan("")) + "\">" +
             title_tag(row_labels[r] + " / " + col_labels[c] + ": " + format_value(v)) + "</rect>\n";
      const std::string label = format_value(v);
      if (o.cell_values && cell_h >= 12 && cell_w >= text_width(label, 10) + 2) {
        const bool dark = o.scale == ColourScale::sequential ? t < 0.6 : std::abs(t - 0.5) > 0.3;
        out += text(x + cell_w / 2, y + cell_h / 2 + 3.5, label, "middle",
                    std::string(" font-size=\"10\" fill=\"") + (dark && std::isfinite(v) ? "white" : "black") + "\"");
      }
    }
  out += "</g>\n<g font-size=\"11\">\n";
  const size_t row_stride = label_stride(rows, o.max_labels, cell_h, 11);
  for (size_t r = 0; r < rows; r += row_stride)
    out += text(left - 4, top + cell_h * (static_cast<double>(r) + 0.5) + 4, row_labels[r], "end");
  const size_t col_stride = label_stride(cols, o.max_labels, cell_w, 11);
  for (size_t c = 0; c < cols; c += col_stride) {
    const double x = left + cell_w * (static_cast<double>(c) + 0.5), y = y1 + 12;
    out += text(x, y, col_labels[c], "end", " transform=\"rotate(-45 " + px(x) + " " + px(y) + ")\"");
  }
  // The legend bar: 64 stripes from the top of the scale down, with tick numbers.
  const double bx = o.width - legend_w + 12, bh = y1 - top;
  out += "</g>\n<g class=\"scale\" shape-rendering=\"crispEdges\">\n";
  for (int k = 0; k < 64; ++k)
    out += "<rect x=\"" + px(bx) + "\" y=\"" + px(top + bh * k / 64) + "\" width=\"14\" height=\"" +
           px(bh / 64 + 0.5) + "\" fill=\"" + scale_colour(o.scale, 1 - (k + 0.5) / 64) + "\"/>\n";
  out += "</g>\n<rect x=\"" + px(bx) + "\" y=\"" + px(top) + "\" width=\"14\" height=\"" + px(bh) +
         "\" fill=\"none\" stroke=\"#888888\"/>\n";
  const Ticks st = nice_ticks(lo, hi, std::clamp(static_cast<int>(bh / 40), 2, 6), false);
  for (double v : st.values) {
    const double y = y1 - (v - lo) / (hi - lo) * bh;
    out += "<line x1=\"" + px(bx + 14) + "\" y1=\"" + px(y) + "\" x2=\"" + px(bx + 18) + "\" y2=\"" + px(y) +
           "\" stroke=\"black\"/>\n" + text(bx + 20, y + 4, tick_label(v, st.step), "start", " font-size=\"11\"");
  }
  return out + "</svg>\n";
}

// ---- layout ----------------------------------------------------------------------------------

std::string stack(const std::vector<std::string>& charts) {
  auto attribute = [](const std::string& svg, const char* name) {
    const size_t end = svg.find('>'), at = svg.find(std::string(" ") + name + "=\"");
    return at < end ? std::atof(svg.c_str() + at + std::strlen(name) + 3) : 0.0;
  };
  double width = 0, height = 0;
  for (const auto& c : charts) width = std::max(width, attribute(c, "width")), height += attribute(c, "height");
  std::string out = open_svg(width, height);
  double y = 0;
  for (const auto& c : charts) {
    const size_t at = c.find("<svg ");
    MMF_CHECK(at != std::string::npos, Error, "svg::stack: a chart is not an <svg> element");
    out += c.substr(0, at + 5) + "y=\"" + px(y) + "\" " + c.substr(at + 5);
    y += attribute(c, "height");
  }
  return out + "</svg>\n";
}

void write_file(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  MMF_CHECK(f != nullptr, IOError, "cannot write '", path, "': ", std::strerror(errno));
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  MMF_CHECK(written && closed, IOError, "cannot write '", path, "': ", std::strerror(errno));
}

}  // namespace mmfuse::svg
