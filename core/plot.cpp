#include "core/plot.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace mmfuse {

namespace {

struct Rgb {
  int r, g, b;
};
const Rgb kColours[] = {{31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {255, 127, 14},
                        {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {23, 190, 207}};

// A 3x5 font: 15 bits per glyph, rows top to bottom, 3 bits per row (MSB left). Letters are
// drawn as capitals.
struct Glyph {
  char c;
  const char* rows;  // 5 rows of 3 characters, '#' set
};
const Glyph kFont[] = {
    {'0', "####.##.##.####"}, {'1', ".#.##..#..#.###"}, {'2', "###..#####..###"}, {'3', "###..####..####"},
    {'4', "#.##.####..#..#"}, {'5', "####..###..####"}, {'6', "####..####.####"}, {'7', "###..#..#..#..#"},
    {'8', "####.#####.####"}, {'9', "####.####..####"}, {'.', "............#.."}, {'-', "......###......"},
    {'+', "....#.###.#...."}, {':', "....#.....#...."}, {'_', "............###"}, {'(', ".#.#..#..#...#."},
    {')', ".#...#..#..#.#."}, {'[', "##.#..#..#..##."}, {']', ".##..#..#..#.##"}, {'#', "#.#####.#####.#"},
    {'/', "..#..#.#..#.#.."}, {'a', ".#.#.#####.##.#"}, {'b', "##.#.###.#.###."}, {'c', "####..#..#..###"},
    {'d', "##.#.##.##.###."}, {'e', "####..####..###"}, {'f', "####..####..#.."}, {'g', "####..#.##.####"},
    {'h', "#.##.#####.##.#"}, {'i', "###.#..#..#.###"}, {'j', "..#..#..##.####"}, {'k', "#.##.###.#.##.#"},
    {'l', "#..#..#..#..###"}, {'m', "#.#####.##.##.#"}, {'n', "##.#.##.##.##.#"}, {'o', "####.##.##.####"},
    {'p', "####.#####..#.."}, {'q', "####.##.####..#"}, {'r', "##.#.###.#.##.#"}, {'s', "####..###..####"},
    {'t', "###.#..#..#..#."}, {'u', "#.##.##.##.####"}, {'v', "#.##.##.##.#.#."}, {'w', "#.##.##.#####.#"},
    {'x', "#.##.#.#.#.##.#"}, {'y', "#.##.#.#..#..#."}, {'z', "###..#.#.#..###"}, {' ', "..............."},
};

const char* glyph(char c) {
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& g : kFont)
    if (g.c == c && std::strlen(g.rows) == 15) return g.rows;
  return "###.#.#.#.#.###";  // unknown: a box-ish mark
}

class Canvas {
 public:
  explicit Canvas(Image& img) : img_(img) {}
  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= img_.width || y >= img_.height) return;
    img_.at(y, x, 0) = static_cast<uint16_t>(c.r);
    img_.at(y, x, 1) = static_cast<uint16_t>(c.g);
    img_.at(y, x, 2) = static_cast<uint16_t>(c.b);
  }
  void line(int x0, int y0, int x1, int y1, Rgb c, int thick = 1) {  // Bresenham
    int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    while (true) {
      for (int a = 0; a < thick; ++a)
        for (int b = 0; b < thick; ++b) set(x0 + a, y0 + b, c);
      if (x0 == x1 && y0 == y1) break;
      int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  void rect(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) set(x, y, c);
  }
  // Text at scale 2 (6x10 pixels a glyph, 8 a step); returns the width drawn.
  int text(int x, int y, const std::string& s, Rgb c, int scale = 2) {
    for (size_t i = 0; i < s.size(); ++i) {
      const char* g = glyph(s[i]);
      for (int r = 0; r < 5; ++r)
        for (int k = 0; k < 3; ++k)
          if (g[r * 3 + k] == '#')
            rect(x + static_cast<int>(i) * 4 * scale + k * scale, y + r * scale,
                 x + static_cast<int>(i) * 4 * scale + k * scale + scale - 1, y + r * scale + scale - 1, c);
    }
    return static_cast<int>(s.size()) * 4 * scale;
  }
  static int text_width(const std::string& s, int scale = 2) { return static_cast<int>(s.size()) * 4 * scale; }

 private:
  Image& img_;
};

std::string tick_label(double v, double step) {
  char buf[32];
  double a = std::abs(v);
  if (a != 0 && (a >= 1e5 || a < 1e-3))
    std::snprintf(buf, sizeof buf, "%.1e", v);
  else {
    int decimals = step >= 1 ? 0 : std::min(4, static_cast<int>(std::ceil(-std::log10(step))));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

// A "nice" step (1, 2, 5 x 10^k) giving about `n` ticks over [lo, hi].
double nice_step(double lo, double hi, int n) {
  double raw = (hi - lo) / n;
  if (!(raw > 0)) return 1;
  double mag = std::pow(10, std::floor(std::log10(raw)));
  double f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

void panel(Canvas& cv, int x0, int y0, int x1, int y1, const std::vector<PlotSeries>& series, double xmin,
           double xmax, size_t colour_offset) {
  const Rgb black{0, 0, 0}, grid{225, 225, 225};
  double ymin = std::numeric_limits<double>::infinity(), ymax = -ymin;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(y)) ymin = std::min(ymin, y), ymax = std::max(ymax, y);
  if (!std::isfinite(ymin)) ymin = 0, ymax = 1;
  if (ymax - ymin < 1e-12) ymin -= 0.5, ymax += 0.5;
  double ystep = nice_step(ymin, ymax, 5);
  ymin = std::floor(ymin / ystep) * ystep;
  ymax = std::ceil(ymax / ystep) * ystep;
  double xstep = nice_step(xmin, xmax, 6);
  auto px = [&](double x) { return x0 + static_cast<int>(std::lround((x - xmin) / (xmax - xmin) * (x1 - x0))); };
  auto py = [&](double y) { return y1 - static_cast<int>(std::lround((y - ymin) / (ymax - ymin) * (y1 - y0))); };
  for (double y = ymin; y <= ymax + ystep * 1e-6; y += ystep) {
    int yy = py(y);
    cv.line(x0, yy, x1, yy, grid);
    std::string l = tick_label(std::abs(y) < ystep * 1e-9 ? 0 : y, ystep);
    cv.text(x0 - 6 - Canvas::text_width(l), yy - 5, l, black);
  }
  for (double x = std::ceil(xmin / xstep) * xstep; x <= xmax + xstep * 1e-6; x += xstep) {
    int xx = px(x);
    cv.line(xx, y0, xx, y1, grid);
    std::string l = tick_label(x, xstep);
    cv.text(xx - Canvas::text_width(l) / 2, y1 + 6, l, black);
  }
  cv.line(x0, y0, x0, y1, black);
  cv.line(x0, y1, x1, y1, black);
  for (size_t i = 0; i < series.size(); ++i) {
    Rgb c = kColours[(i + colour_offset) % (sizeof kColours / sizeof kColours[0])];
    bool have = false;
    int lx = 0, ly = 0;
    for (const auto& [x, y] : series[i].points) {
      if (!std::isfinite(y)) {
        have = false;
        continue;
      }
      int xx = px(x), yy = py(y);
      if (have) cv.line(lx, ly, xx, yy, c, 2);
      if (series[i].points.size() < 40) cv.rect(xx - 2, yy - 2, xx + 2, yy + 2, c);
      lx = xx, ly = yy, have = true;
    }
    // Legend, top right.
    int ty = y0 + 6 + static_cast<int>(i) * 14;
    int tw = Canvas::text_width(series[i].name);
    cv.rect(x1 - tw - 30, ty - 2, x1 - 4, ty + 11, {255, 255, 255});
    cv.rect(x1 - tw - 26, ty + 3, x1 - tw - 14, ty + 6, c);
    cv.text(x1 - tw - 8, ty, series[i].name, black);
  }
}

}  // namespace

Image render_training_curve(const std::vector<PlotSeries>& losses, const std::vector<PlotSeries>& metrics, int width,
                            int height) {
  Image img(width, height, 3, 8);
  std::fill(img.pixels.begin(), img.pixels.end(), uint16_t{255});
  Canvas cv(img);
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin;
  for (const auto* list : {&losses, &metrics})
    for (const auto& s : *list)
      for (const auto& [x, y] : s.points) xmin = std::min(xmin, x), xmax = std::max(xmax, x);
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1;
  if (xmax - xmin < 1) xmax = xmin + 1;
  const int left = 90, right = width - 20, top = 30;
  const Rgb black{0, 0, 0};
  if (metrics.empty()) {
    cv.text(left, 8, "loss", black);
    panel(cv, left, top, right, height - 40, losses, xmin, xmax, 0);
  } else {
    int mid = height / 2;
    cv.text(left, 8, "loss", black);
    panel(cv, left, top, right, mid - 30, losses, xmin, xmax, 0);
    cv.text(left, mid - 8, "test metrics", black);
    panel(cv, left, mid + 14, right, height - 40, metrics, xmin, xmax, losses.size());
  }
  std::string xl = "iteration";
  cv.text((left + right) / 2 - Canvas::text_width(xl) / 2, height - 16, xl, black);
  return img;
}

void plot_training_curve(const std::string& path, const std::vector<PlotSeries>& losses,
                         const std::vector<PlotSeries>& metrics) {
  write_png(path, render_training_curve(losses, metrics));
}

}  // namespace mmfuse
