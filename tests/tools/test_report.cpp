// The charting and page layer of `mmfuse probe` and the training curve (core/svg.h,
// core/html_report.h): well-formed SVG with every text escaped, nice ticks, gaps for NaN, bars
// below zero, the ends of the colour scales, base64 against RFC 4648, and a page round trip.
// The sample pages the browser check runs on (tests/report_page/run) are written here too.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>

#include "base/error.h"
#include "core/html_report.h"
#include "core/metrics_log.h"
#include "core/png.h"
#include "core/svg.h"
#include "doctest/doctest.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
using mmfuse::testing::TempDir;

namespace {

// A tiny XML checker for what core/svg writes: tags balance, attributes are name="value",
// text and values hold no raw '<' or '>' and no '&' but an entity. Returns "" or the problem,
// and counts the elements by name.
std::string check_xml(const std::string& xml, std::map<std::string, int>* counts = nullptr) {
  auto bad_text = [](const std::string& s) -> std::string {
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '<' || s[i] == '>') return "a raw '" + std::string(1, s[i]) + "' in text '" + s + "'";
      if (s[i] != '&') continue;
      size_t end = s.find(';', i);
      std::string entity = end == std::string::npos ? "" : s.substr(i, end - i + 1);
      if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" && entity != "&quot;" && entity != "&#39;")
        return "a raw '&' in '" + s + "'";
    }
    return "";
  };
  std::vector<std::string> open;
  size_t i = 0;
  while (i < xml.size()) {
    size_t lt = xml.find('<', i);
    std::string text = xml.substr(i, lt == std::string::npos ? std::string::npos : lt - i);
    if (auto e = bad_text(text); !e.empty()) return e;
    if (lt == std::string::npos) break;
    size_t gt = xml.find('>', lt);
    if (gt == std::string::npos) return "an unclosed tag";
    std::string tag = xml.substr(lt + 1, gt - lt - 1);
    i = gt + 1;
    if (tag.empty()) return "an empty tag";
    if (tag[0] == '/') {
      if (open.empty() || open.back() != tag.substr(1)) return "</" + tag.substr(1) + "> closes nothing open";
      open.pop_back();
      continue;
    }
    const bool self_closing = tag.back() == '/';
    if (self_closing) tag.pop_back();
    size_t name_end = tag.find(' ');
    std::string name = tag.substr(0, name_end);
    if (counts) ++(*counts)[name];
    // Attributes: name="value" pairs, separated by spaces.
    for (size_t p = name_end; p != std::string::npos && p < tag.size();) {
      p = tag.find_first_not_of(' ', p);
      if (p == std::string::npos) break;
      size_t eq = tag.find("=\"", p), close = eq == std::string::npos ? eq : tag.find('"', eq + 2);
      if (close == std::string::npos) return "a malformed attribute in <" + tag + ">";
      if (auto e = bad_text(tag.substr(eq + 2, close - eq - 2)); !e.empty()) return e;
      p = close + 1;
    }
    if (!self_closing) open.push_back(name);
  }
  return open.empty() ? "" : "<" + open.back() + "> is not closed";
}

// The attribute `name` of the element (start tag) that holds the tooltip `title`.
double attribute_of(const std::string& svg, const std::string& title, const std::string& name) {
  size_t at = svg.find("<title>" + title + "</title>");
  REQUIRE_MESSAGE(at != std::string::npos, "no element titled ", title);
  size_t start = svg.rfind('<', svg.rfind('>', at - 1));
  std::string tag = svg.substr(start, at - start);
  size_t a = tag.find(" " + name + "=\"");
  REQUIRE_MESSAGE(a != std::string::npos, tag, " has no ", name);
  return std::atof(tag.c_str() + a + name.size() + 3);
}
std::string fill_of(const std::string& svg, const std::string& title) {
  size_t at = svg.find("<title>" + title + "</title>");
  REQUIRE_MESSAGE(at != std::string::npos, "no element titled ", title);
  size_t start = svg.rfind("<rect", at), f = svg.find("fill=\"", start);
  return svg.substr(f + 6, 7);
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

std::vector<uint8_t> base64_decode(const std::string& text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<uint8_t> out;
  uint32_t bits = 0;
  int have = 0;
  for (char c : text) {
    if (c == '=') break;
    bits = (bits << 6) | static_cast<uint32_t>(alphabet.find(c));
    if ((have += 6) >= 8) out.push_back(static_cast<uint8_t>(bits >> (have -= 8)));
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The tick values, checked against `expected` to 1e-9 of the step.
bool ticks_are(const svg::Ticks& t, const std::vector<double>& expected) {
  if (t.values.size() != expected.size()) return false;
  for (size_t i = 0; i < expected.size(); ++i)
    if (std::abs(t.values[i] - expected[i]) > 1e-9 * t.step) return false;
  return true;
}

// A page with every element kind: what the browser check (tests/report_page/run) opens.
HtmlReport sample_page() {
  Image image(4, 3, 3);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint16_t>(i * 20 % 256);
  const std::vector<uint8_t> png = encode_png(image);
  HtmlReport page("probe <sample> & \"friends\"");
  page.add_section("tables", "Tables").paragraph("Scores per modality; a < b & c > d.");
  page.table({"modality", "mIoU", "note"}, {{"rgb", "41.5", "<best>"}, {"depth", "38.25", "-"}});
  std::vector<svg::Series> lines = {{"train", {{0, 2.0}, {10, 1.2}, {20, std::nan("")}, {30, 0.7}, {40, 0.5}}},
                                    {"test", {{0, 2.1}, {20, 1.4}, {40, 0.9}}}};
  page.add_section("lines", "Line chart").figure(svg::line_chart(lines, {.title = "loss"}), "losses");
  page.add_section("bars", "Bar chart")
      .figure(svg::bar_chart({"rgb", "depth", "fused"}, {{"gate", {0.5, -0.25, 0.8}}, {"norm", {1.2, 0.4, -0.6}}},
                             {.title = "gates", .value_labels = true}));
  page.add_section("heatmap", "Heatmap")
      .figure(svg::heatmap({{0.9, 0.1}, {0.2, std::nan("")}}, {"cat", "dog"}, {"cat", "dog"},
                           {.width = 320, .height = 300, .title = "confusion", .cell_values = true}),
              "confusion matrix");
  page.add_section("images", "Feature images").image(png, "a feature map", 96).gallery({{png, "c0"}, {png, "c1"}});
  return page;
}

}  // namespace

TEST_CASE("report: the XML checker itself refuses what it should") {
  CHECK(check_xml("<svg><text x=\"1\">a &amp; b</text><rect/></svg>") == "");
  CHECK(check_xml("<svg><text>a & b</text></svg>") != "");
  CHECK(check_xml("<svg><text>a > b</text></svg>") != "");
  CHECK(check_xml("<svg><g></svg>") != "");
  CHECK(check_xml("<svg><text x=\"<\">a</text></svg>") != "");
  CHECK(check_xml("<svg>") != "");
}

TEST_CASE("report: ticks are 1-2-5 steps, labels as short as the step allows") {
  CHECK(ticks_are(svg::nice_ticks(0, 1), {0, 0.2, 0.4, 0.6, 0.8, 1}));
  svg::Ticks t = svg::nice_ticks(0.13, 0.87);  // an automatic axis grows to the ticks around it
  CHECK(t.step == doctest::Approx(0.1));
  CHECK(t.lo == doctest::Approx(0.1));
  CHECK(t.hi == doctest::Approx(0.9));
  CHECK(t.values.size() == 9);
  t = svg::nice_ticks(-3, 7);
  CHECK(t.step == 2);
  CHECK(ticks_are(t, {-4, -2, 0, 2, 4, 6, 8}));
  t = svg::nice_ticks(0, 1000, 6, false);
  CHECK(ticks_are(t, {0, 200, 400, 600, 800, 1000}));
  t = svg::nice_ticks(3, 997, 6, false);  // inside the range only
  CHECK(ticks_are(t, {200, 400, 600, 800}));
  CHECK(t.lo == 3);
  t = svg::nice_ticks(5, 5);  // one value: a unit around it
  CHECK(t.step == doctest::Approx(0.2));
  CHECK(t.lo <= 4.5);
  CHECK(t.hi >= 5.5);
  CHECK(ticks_are(svg::nice_ticks(0, 5e-6), {0, 1e-6, 2e-6, 3e-6, 4e-6, 5e-6}));
  CHECK(svg::tick_label(0.1 + 0.2, 0.1) == "0.3");
  CHECK(svg::tick_label(0.75, 0.25) == "0.75");
  CHECK(svg::tick_label(2000, 1000) == "2000");
  CHECK(svg::tick_label(-1e-17, 0.2) == "0.0");
  CHECK(svg::tick_label(1, 0.2) == "1.0");
  CHECK(svg::tick_label(2e6, 1e6) == "2e+06");
  CHECK(svg::tick_label(3e-6, 1e-6) == "3e-06");
  CHECK(svg::format_value(0.123456) == "0.1235");
  CHECK(svg::format_value(std::nan("")) == "nan");
  CHECK(svg::format_value(-0.0) == "0");
}

TEST_CASE("report: a line chart is well-formed, NaN makes a gap, markers on short series") {
  const double nan = std::nan("");
  std::vector<svg::Series> series = {
      {"a", {{0, 1}, {1, 2}, {2, nan}, {3, 3}, {4, 4}}},
      {"b", {{0, 0.5}, {1, std::numeric_limits<double>::infinity()}, {2, 0.7}, {nan, 1}, {4, 0.6}}},
  };
  const std::string chart = svg::line_chart(series, {.title = "t", .x_label = "iteration", .y_label = "loss"});
  std::map<std::string, int> elements;
  REQUIRE(check_xml(chart, &elements) == "");
  CHECK(chart.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"300\" viewBox=\"0 0 800 300\"",
                    0) == 0);
  CHECK(elements["path"] == 2);
  const size_t a = chart.find("<path d=\""), b = chart.find("<path d=\"", a + 1);
  const std::string path_a = chart.substr(a, chart.find('"', a + 9) - a);
  const std::string path_b = chart.substr(b, chart.find('"', b + 9) - b);
  CHECK(count(path_a, "M") == 2);  // (0,1)-(1,2), gap, (3,3)-(4,4)
  CHECK(count(path_a, "L") == 2);
  CHECK(count(path_b, "M") == 3);  // (0,0.5), gap, (2,0.7), gap, (4,0.6): three lone points
  CHECK(count(path_b, "L") == 0);
  CHECK(elements["circle"] == 7);  // a marker (and tooltip) per finite point
  CHECK(chart.find("<title>a: 3, 3</title>") != std::string::npos);
  for (const char* label : {">t<", ">iteration<", ">loss<", ">a<", ">b<"})
    CHECK(chart.find(label) != std::string::npos);
  // y from 0.5 to 4: ticks 0.5..4 by 0.5 (x: 0..4 by 0.5).
  CHECK(chart.find(">3.5</text>") != std::string::npos);
  CHECK(chart.find(">4.5</text>") == std::string::npos);

  // A long series: no markers. A fixed y range: its ticks only, even with points outside.
  svg::Series longer{"acc", {}};
  for (int i = 0; i < 100; ++i) longer.points.emplace_back(i, i == 50 ? 1.5 : i / 100.0);
  const std::string fixed = svg::line_chart({longer}, {.y_range = {{0, 1}}});
  REQUIRE(check_xml(fixed) == "");
  CHECK(count(fixed, "<circle") == 0);
  CHECK(fixed.find(">1.0</text>") != std::string::npos);
  CHECK(fixed.find(">0.8</text>") != std::string::npos);
  CHECK(fixed.find(">1.2</text>") == std::string::npos);
  CHECK(fixed == svg::line_chart({longer}, {.y_range = {{0, 1}}}));  // deterministic
  // No data at all still draws a frame.
  CHECK(check_xml(svg::line_chart({}, {})) == "");
  CHECK(check_xml(svg::line_chart({{"empty", {{1, nan}}}}, {})) == "");
}

TEST_CASE("report: bars grow from zero, down for negative values") {
  const std::string chart = svg::bar_chart({"a", "b", "c"}, {{"s", {2, -3, std::nan("")}}, {"t", {1, 1, 1}}},
                                           {.value_labels = true});
  REQUIRE(check_xml(chart) == "");
  const double pos_y = attribute_of(chart, "a / s: 2", "y"), pos_h = attribute_of(chart, "a / s: 2", "height");
  const double neg_y = attribute_of(chart, "b / s: -3", "y"), neg_h = attribute_of(chart, "b / s: -3", "height");
  CHECK(pos_h > 0);
  CHECK(neg_h > 0);
  CHECK(pos_y + pos_h == doctest::Approx(neg_y).epsilon(1e-3));  // both meet at the zero line
  CHECK(neg_h == doctest::Approx(1.5 * pos_h).epsilon(0.02));
  CHECK(chart.find("<title>c / s: nan</title>") == std::string::npos);  // no bar for NaN
  CHECK(chart.find(">-3</text>") != std::string::npos);                 // tick and value label
  CHECK(chart.find(">2</text>") != std::string::npos);
  CHECK_THROWS_AS(svg::bar_chart({"a"}, {{"s", {1, 2}}}), Error);
}

TEST_CASE("report: heatmap colours at the ends of the scales, NaN grey, labels thinned") {
  CHECK(svg::scale_colour(svg::ColourScale::sequential, 0) == "#440154");
  CHECK(svg::scale_colour(svg::ColourScale::sequential, 1) == "#fde725");
  CHECK(svg::scale_colour(svg::ColourScale::sequential, 7) == "#fde725");  // clamped
  CHECK(svg::scale_colour(svg::ColourScale::diverging, 0) == "#2166ac");
  CHECK(svg::scale_colour(svg::ColourScale::diverging, 0.5) == "#f7f7f7");
  CHECK(svg::scale_colour(svg::ColourScale::diverging, 1) == "#b2182b");
  CHECK(svg::scale_colour(svg::ColourScale::diverging, std::nan("")) == "#c8c8c8");

  const std::string seq = svg::heatmap({{0, 0.5}, {1, std::nan("")}}, {"r0", "r1"}, {"c0", "c1"}, {.title = "m"});
  REQUIRE(check_xml(seq) == "");
  CHECK(fill_of(seq, "r0 / c0: 0") == "#440154");
  CHECK(fill_of(seq, "r1 / c0: 1") == "#fde725");
  CHECK(fill_of(seq, "r1 / c1: nan") == "#c8c8c8");
  CHECK(seq.find(">0.4</text>") != std::string::npos);  // the legend bar's numbers
  CHECK(seq.find(">1.0</text>") != std::string::npos);

  // Diverging: symmetric around the centre, so -2 is the blue end and 0 white.
  const std::string div = svg::heatmap({{-2, 0, 1}}, {"w"}, {"x", "y", "z"},
                                       {.scale = svg::ColourScale::diverging, .cell_values = true});
  REQUIRE(check_xml(div) == "");
  CHECK(fill_of(div, "w / x: -2") == "#2166ac");
  CHECK(fill_of(div, "w / y: 0") == "#f7f7f7");
  CHECK(div.find(">-2</text>") != std::string::npos);
  const std::string fixed = svg::heatmap({{-2, 5}}, {"w"}, {"x", "y"},
                                         {.scale = svg::ColourScale::diverging, .min = -1, .max = 1});
  CHECK(fill_of(fixed, "w / x: -2") == "#2166ac");
  CHECK(fill_of(fixed, "w / y: 5") == "#b2182b");

  std::vector<std::vector<double>> big(100, std::vector<double>(100));
  for (int r = 0; r < 100; ++r)
    for (int c = 0; c < 100; ++c) big[r][c] = (r * 100 + c) / 9999.0;
  std::vector<std::string> names;
  for (int i = 0; i < 100; ++i) names.push_back(std::string("r").append(std::to_string(i)));
  const std::string many = svg::heatmap(big, names, names);
  REQUIRE(check_xml(many) == "");
  CHECK(many.find(">r0</text>") != std::string::npos);
  CHECK(many.find(">r3</text>") != std::string::npos);
  CHECK(many.find(">r1</text>") == std::string::npos);
  CHECK(count(many, "</text>") == 2 * 34 + 6);  // rows and columns 0, 3, ..., 99; the scale's 0, 0.2, .. 1
  CHECK_THROWS_AS(svg::heatmap({{1, 2}, {3}}, {"a", "b"}, {"x", "y"}), Error);
  CHECK_THROWS_AS(svg::heatmap({{1}}, {"a", "b"}, {"x"}), Error);
}

TEST_CASE("report: every text is escaped") {
  const std::string nasty = "a<b & \"c\" 'd'>";
  const std::string escaped = "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;";
  CHECK(svg::escape(nasty) == escaped);
  const std::string line = svg::line_chart({{nasty, {{0, 1}, {1, 2}}}}, {.title = nasty, .x_label = nasty});
  const std::string bars = svg::bar_chart({nasty}, {{nasty, {1}}}, {.title = nasty, .y_label = nasty});
  const std::string heat = svg::heatmap({{1}}, {nasty}, {nasty}, {.title = nasty, .cell_values = true});
  for (const std::string* chart : {&line, &bars, &heat}) {
    CHECK(check_xml(*chart) == "");
    CHECK(chart->find(nasty) == std::string::npos);
    CHECK(chart->find(escaped) != std::string::npos);
  }
  HtmlReport page(nasty);
  page.add_section("s", nasty).paragraph(nasty).table({nasty}, {{nasty}});
  CHECK(page.html().find(nasty) == std::string::npos);
  CHECK(count(page.html(), escaped) == 7);  // <title>, <h1>, the nav, <h2>, <p>, <th>, <td>
}

TEST_CASE("report: panels stack into one figure; the training curve is such a figure") {
  const std::string top = svg::line_chart({{"loss", {{0, 1}, {10, 0.5}}}});
  const std::string bottom = svg::line_chart({{"acc", {{0, 0.2}, {10, 0.8}}}}, {.width = 600, .height = 200});
  const std::string both = svg::stack({top, bottom});
  REQUIRE(check_xml(both) == "");
  CHECK(both.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"500\"", 0) == 0);
  CHECK(both.find("<svg y=\"300\" xmlns=") != std::string::npos);

  TrainingCurve curve;
  CHECK(curve.to_svg().empty());
  for (int i = 0; i <= 100; i += 10) curve.add_train(i, 2.0 / (1 + i));
  TestResult r;
  r.outputs = {{"loss", 0.9}, {"accuracy", 0.6}};
  curve.add_test(0, 0, 1, r);
  r.outputs = {{"loss", 0.4}, {"accuracy", 0.85}};
  curve.add_test(100, 0, 1, r);
  const std::string figure = curve.to_svg();
  REQUIRE(check_xml(figure) == "");
  CHECK(figure.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"600\"", 0) == 0);
  const size_t second = figure.find("<svg y=\"300\"");
  REQUIRE(second != std::string::npos);
  // Losses above, the other test outputs below, one iteration axis under the lower panel.
  CHECK(figure.find(">train loss (smoothed)<") < second);
  CHECK(figure.find(">test loss<") < second);
  CHECK(figure.find(">test accuracy<") > second);
  CHECK(figure.find(">iteration<") > second);
  CHECK(count(figure, ">iteration<") == 1);
  TempDir tmp("report_curve");
  curve.write(tmp / "sub/run_curve.svg");
  CHECK(read_file(tmp / "sub/run_curve.svg") == figure);
}

TEST_CASE("report: base64 matches the RFC 4648 vectors") {
  auto b64 = [](const std::string& s) { return base64_encode(std::vector<uint8_t>(s.begin(), s.end())); };
  CHECK(b64("") == "");
  CHECK(b64("f") == "Zg==");
  CHECK(b64("fo") == "Zm8=");
  CHECK(b64("foo") == "Zm9v");
  CHECK(b64("foob") == "Zm9vYg==");
  CHECK(b64("fooba") == "Zm9vYmE=");
  CHECK(b64("foobar") == "Zm9vYmFy");
  CHECK(base64_encode({0xfb, 0xff}) == "+/8=");
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[i] = static_cast<uint8_t>(i);
  CHECK(base64_decode(base64_encode(all)) == all);
}

TEST_CASE("report: a page round trip: nav, sections, tables, figures and embedded PNGs") {
  TempDir tmp("report_page");
  const HtmlReport page = sample_page();
  const std::string html = page.html();
  page.write(tmp / "index.html");
  CHECK(read_file(tmp / "index.html") == html);
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  for (const char* id : {"tables", "lines", "bars", "heatmap", "images"}) {
    CHECK(html.find("<a href=\"#" + std::string(id) + "\">") != std::string::npos);
    CHECK(html.find("<section id=\"" + std::string(id) + "\">") != std::string::npos);
  }
  CHECK(html.find("<nav>") < html.find("<section"));
  CHECK(html.find("document.documentElement.dataset.ready") != std::string::npos);
  CHECK(html.find("window.onerror") != std::string::npos);
  // Self-contained: nothing is fetched from anywhere.
  std::string no_xmlns = html;
  for (size_t at; (at = no_xmlns.find("http://www.w3.org/2000/svg")) != std::string::npos;) no_xmlns.erase(at, 26);
  CHECK(no_xmlns.find("http") == std::string::npos);
  CHECK(html.find(" src=\"data:image/png;base64,") != std::string::npos);
  CHECK(html.find("<td class=\"num\">41.5</td>") != std::string::npos);
  CHECK(html.find("<td>rgb</td>") != std::string::npos);
  CHECK(html.find("<td>&lt;best&gt;</td>") != std::string::npos);
  CHECK(count(html, "<svg xmlns=") == 3);
  CHECK(count(html, "<img ") == 3);
  CHECK(html.find("<figcaption>confusion matrix</figcaption>") != std::string::npos);

  // Every embedded image decodes to the PNG bytes it came from.
  Image image(4, 3, 3);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint16_t>(i * 20 % 256);
  const std::vector<uint8_t> png = encode_png(image);
  const std::string prefix = "src=\"data:image/png;base64,";
  for (size_t at = html.find(prefix); at != std::string::npos; at = html.find(prefix, at + 1)) {
    const size_t start = at + prefix.size();
    CHECK(base64_decode(html.substr(start, html.find('"', start) - start)) == png);
  }

  HtmlReport bad("x");
  CHECK_THROWS_WITH_AS(bad.paragraph("too early"), doctest::Contains("before the first add_section"), Error);
  bad.add_section("a", "A");
  CHECK_THROWS_WITH_AS(bad.add_section("a", "again"), doctest::Contains("a second section 'a'"), Error);
  CHECK_THROWS_AS(bad.add_section("has space", "B"), Error);
  CHECK_THROWS_AS(bad.add_section("", "B"), Error);
  CHECK_THROWS_WITH_AS(bad.table({"h1", "h2"}, {{"only one"}}), doctest::Contains("row 0 has 1 cells for 2"), Error);
  CHECK_THROWS_WITH_AS(bad.write(tmp / "no/such/dir/index.html"), doctest::Contains("no/such/dir/index.html"), IOError);
}

// tests/report_page/run sets MMFUSE_REPORT_PAGES to a folder and opens these in a browser.
TEST_CASE("report: the sample pages for the browser check") {
  const char* dir = std::getenv("MMFUSE_REPORT_PAGES");
  HtmlReport good = sample_page();
  HtmlReport broken = sample_page();  // a script that throws: window.onerror must report it
  broken.add_section("broken", "Broken").raw_html("<script>undefined_function_of_a_broken_page();</script>");
  HtmlReport missing = sample_page();  // a nav entry whose section is not in the page
  missing.add_section("extra", "Extra").raw_html("<nav><a href=\"#nowhere\">nowhere</a></nav>");
  HtmlReport scripted = sample_page();  // an element that only a script makes
  scripted.add_section("extra", "Extra")
      .raw_html("<script>var made = document.createElement('div'); made.id = 'made';"
                " document.body.appendChild(made);</script>");
  CHECK(good.html().find("undefined_function") == std::string::npos);
  if (!dir) return;
  good.write(std::string(dir) + "/index.html");
  broken.write(std::string(dir) + "/broken_script.html");
  missing.write(std::string(dir) + "/missing_section.html");
  scripted.write(std::string(dir) + "/scripted_section.html");
}
