// Charts as SVG text, written from C++ (docs/report.md says why not a JavaScript library): line
// charts, grouped bar charts and heatmaps for `mmfuse probe`'s page (core/html_report.h) and
// the training curve of `mmfuse train`. Each function returns one <svg> element with width,
// height and a viewBox (so a page may scale it), the xmlns (so it is also a file of its own),
// every text XML-escaped and a <title> tooltip on each marker, bar and cell. The output depends
// on the arguments only: the same data gives the same bytes.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mmfuse::svg {

// Text for XML/HTML content and attribute values: & < > " ' escaped.
std::string escape(const std::string& text);
// A number for labels and tooltips: up to 4 significant digits ("0.125", "1.235e+06", "nan").
std::string format_value(double value);

// Axis ticks at 1, 2 or 5 x 10^k steps, about `target` of them over [lo, hi]. With `expand`
// the range grows to the ticks around it (an automatic axis), otherwise the ticks lie inside.
struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
};
Ticks nice_ticks(double lo, double hi, int target = 5, bool expand = true);
// A tick's label, with as many decimals as the step needs, the same for every tick of an axis
// ("0.25", "1.0" for steps of 0.2, "100", "1e+06").
std::string tick_label(double value, double step);

// ---- line chart ------------------------------------------------------------------------------

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y); a non-finite x or y leaves a gap
};

struct LineChartOptions {
  int width = 800, height = 300;
  std::string title{}, x_label{}, y_label{};
  std::optional<std::pair<double, double>> y_range{};  // e.g. {0, 1}; otherwise fitted to the data
  std::optional<std::pair<double, double>> x_range{};  // e.g. shared by charts stacked in a column
  size_t markers_below = 40;  // a series with fewer points gets a marker (and tooltip) per point
  size_t colour_offset = 0;   // the palette index of the first series
  int min_left_margin = 0;    // at least this room for the y tick labels: charts stacked in a
                              // column pass one value, and their x axes line up
};
std::string line_chart(const std::vector<Series>& series, const LineChartOptions& options = {});

// ---- grouped bar chart -----------------------------------------------------------------------

struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per category; a non-finite value draws no bar
};

struct BarChartOptions {
  int width = 800, height = 300;
  std::string title{}, y_label{};
  std::optional<std::pair<double, double>> y_range{};  // otherwise fitted to the data and 0
  bool value_labels = false;                          // the value above (below: negative) each bar
};
// Bars grow from 0, so negative values point down. Throws Error when a series does not have
// one value per category.
std::string bar_chart(const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                      const BarChartOptions& options = {});

// ---- heatmap ---------------------------------------------------------------------------------

enum class ColourScale {
  sequential,  // viridis, for data like [0, 1]: low dark purple, high yellow
  diverging,   // blue - white - red around `centre`, for signed data
};
// The scale's colour at t in [0, 1] (clamped) as "#rrggbb"; NaN gives the grey of missing cells.
std::string scale_colour(ColourScale scale, double t);

struct HeatmapOptions {
  int width = 600, height = 600;  // the whole figure; cells share what the labels leave
  std::string title{};
  ColourScale scale = ColourScale::sequential;
  std::optional<double> min{}, max{};  // the ends of the scale; otherwise the data's (diverging:
  double centre = 0;               // symmetric around centre)
  size_t max_labels = 40;          // more rows (columns) than this: every k-th label only
  bool cell_values = false;        // the value written in each cell (where cells are large enough)
};
// `values` is rows x cols, row-major (`values[r][c]`); NaN cells are grey. Throws Error when the
// labels do not match the matrix or a row has another length.
std::string heatmap(const std::vector<std::vector<double>>& values, const std::vector<std::string>& row_labels,
                    const std::vector<std::string>& col_labels, const HeatmapOptions& options = {});

// ---- layout ----------------------------------------------------------------------------------

// One <svg> holding `charts` (outputs of the functions above) one below the other, as wide as
// the widest: two panels of a figure, e.g. losses above metrics.
std::string stack(const std::vector<std::string>& charts);
// Writes `svg` (or any text) to `path`; throws IOError when it cannot.
void write_file(const std::string& path, const std::string& text);

}  // namespace mmfuse::svg
