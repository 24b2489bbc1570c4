// index.html: one section per kind of figure, each always present (a model without MMTM says
// so), charts from core/svg.h, images inlined by core/html_report.h.
#include <algorithm>
#include <cmath>
#include <map>

#include "base/format.h"
#include "core/html_report.h"
#include "core/png.h"
#include "core/svg.h"
#include "probe/report.h"

namespace mmfuse::probe {

namespace {

std::string num(double v, const char* format = "%.3f") { return std::isfinite(v) ? format_number(format, v) : "–"; }

std::string ablation_label(const Ablation& a) { return a.target.empty() ? a.kind : a.kind + ": " + a.target; }

// A table folded under a <details> line: long lists stay out of the way.
void folded_table(HtmlReport& page, const std::string& summary, const std::vector<std::string>& headers,
                  const std::vector<std::vector<std::string>>& rows) {
  page.raw_html("<details><summary>" + svg::escape(summary) + "</summary>");
  page.table(headers, rows);
  page.raw_html("</details>");
}

// CKA over stages, 0 to 1, with the table of every stage below.
void cka_figure(HtmlReport& page, const std::string& title, const std::vector<svg::Series>& series,
                const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows) {
  svg::LineChartOptions o;
  o.title = title;
  o.x_label = "stage (table below)";
  o.y_label = "linear CKA";
  o.y_range = std::make_pair(0.0, 1.0);
  o.height = 310;
  page.figure(svg::line_chart(series, o));
  folded_table(page, "every stage", headers, rows);
}

void overview(HtmlReport& page, const ProbeResult& r) {
  page.add_section("overview", "Overview");
  std::string mods;
  for (const auto& m : r.modalities) mods += (mods.empty() ? "" : ", ") + m;
  page.table({"model", "weights", "test batches", "modalities", "metric"},
             {{r.model, r.weights, std::to_string(r.iterations), mods, r.metric_name}}, false);
  std::string summary = probe_summary(r), html = "<ul>";
  for (size_t at = 0; at < summary.size();) {
    size_t end = summary.find('\n', at);
    std::string line = summary.substr(at, end - at);
    line.erase(0, line.find_first_not_of(' '));
    html += "<li>" + svg::escape(line) + "</li>";
    at = end == std::string::npos ? summary.size() : end + 1;
  }
  page.raw_html(html + "</ul>");
  page.paragraph("Every figure is defined in docs/probe.md; the numbers are in probe.json beside this page.");
}

void ablations(HtmlReport& page, const ProbeResult& r) {
  page.add_section("ablations", "Test-time ablations");
  if (r.ablations.empty() || r.ablations[0].metrics.empty()) {
    page.paragraph("Not run (--no-ablations).");
    return;
  }
  page.paragraph("The test set re-scored (" + r.metric_name +
                 ", x100) with one thing turned off: a fusion layer (shuffle -> identity, shift-add -> no add, "
                 "MMTM gate -> 1), one modality's input (zeroed, replaced by noise with its per-channel mean and "
                 "spread, or swapped with another sample's), or the ensemble replaced by one branch.");
  const auto& base = r.ablations[0].metrics;
  std::vector<std::string> headers = {"ablation"};
  for (const auto& [name, v] : base) headers.push_back(name), headers.push_back("Δ");
  std::vector<std::vector<std::string>> rows;
  // One chart per family (fusion layers, modalities, ensemble), each beginning with the model
  // as trained; the table has every row.
  std::vector<std::string> families;
  std::map<std::string, std::pair<std::vector<std::string>, std::vector<svg::BarSeries>>> charts;
  for (const auto& a : r.ablations) {
    std::vector<std::string> row = {ablation_label(a)};
    for (size_t k = 0; k < base.size(); ++k) {
      double v = k < a.metrics.size() ? a.metrics[k].second : std::nan("");
      row.push_back(num(v, "%.2f"));
      row.push_back(num(v - base[k].second, "%+.2f"));
    }
    rows.push_back(row);
    if (a.kind == "baseline") continue;
    std::string family = a.kind.substr(0, a.kind.find(' '));
    auto& [categories, series] = charts[family];
    if (categories.empty()) {
      families.push_back(family);
      categories.push_back("as trained");
      for (const auto& [name, v] : base) series.push_back({name, {v}});
    }
    categories.push_back(a.kind.rfind("modality", 0) == 0 ? a.kind.substr(9) + " " + a.target : a.target);
    for (size_t k = 0; k < series.size(); ++k) series[k].values.push_back(k < a.metrics.size() ? a.metrics[k].second : std::nan(""));
  }
  for (const auto& family : families) {
    const auto& [categories, series] = charts[family];
    svg::BarChartOptions o;
    o.width = std::max(700, 28 * static_cast<int>(categories.size() * std::max<size_t>(1, series.size())));
    o.height = 300;
    o.title = r.metric_name + ": " + (family == "fusion" ? "each fusion layer turned off"
                                      : family == "modality" ? "each modality zeroed, noise, swapped"
                                                             : "the ensemble replaced by one branch");
    o.y_label = r.metric_name;
    double top = 0;  // headroom above the bars for the legend
    for (const auto& s : series)
      for (double v : s.values)
        if (std::isfinite(v)) top = std::max(top, v);
    if (top > 0) o.y_range = std::make_pair(0.0, 1.35 * top);
    page.figure(svg::bar_chart(categories, series, o));
  }
  page.table(headers, rows);
}

void similarity(HtmlReport& page, const ProbeResult& r) {
  page.add_section("cka", "Branch similarity (linear CKA)");
  if (r.cka.empty()) {
    page.paragraph("No pair of modality branches found (no modality-stacked blob, no <modality>.* streams).");
    return;
  }
  page.paragraph(
      "Linear CKA between two modalities' views of each stage, in network order: each spatial position of each test "
      "sample is one row, its channels the features (positions subsampled, averaged over batches). 1: the branches "
      "carry the same information up to a rotation and scale; near 0: unrelated.");
  std::map<std::pair<int, int>, svg::Series> lines;
  std::vector<std::vector<std::string>> rows;
  int stage = 0;
  for (const auto& c : r.cka) {
    auto& s = lines[{c.a, c.b}];
    s.name = modality_name(r, c.a) + " vs " + modality_name(r, c.b);
    s.points.emplace_back(stage++, c.cka.mean);
    rows.push_back({std::to_string(stage - 1), c.blob_b.empty() ? c.blob : c.blob + " / " + c.blob_b, c.layer,
                    std::to_string(c.channels) + " x " + std::to_string(c.height) + " x " + std::to_string(c.width),
                    num(c.cka.mean), num(c.cka.stddev())});
  }
  std::vector<svg::Series> series;
  for (auto& [pair, s] : lines) series.push_back(s);
  cka_figure(page, "CKA between branches, stage by stage", series,
             {"stage", "blob", "written by", "C x H x W", "CKA", "std over batches"}, rows);
}

void comparisons(HtmlReport& page, const ProbeResult& r) {
  page.add_section("compare", "Against other models (--compare)");
  if (r.comparisons.empty()) {
    page.paragraph("No other model given. `--compare MODEL[:WEIGHTS]` runs another model (a single-modality "
                   "baseline, say) on the same test batches and plots the CKA between each branch of this model and "
                   "its blob of the same name.");
    return;
  }
  for (const auto& c : r.comparisons) {
    page.paragraph(c.model + " (" + c.weights + "): linear CKA between each modality's branch of this model and the "
                   "other model's blob of the same name, stage by stage. The first stages (the inputs) near 1 show "
                   "that both saw the same samples.");
    std::map<int, svg::Series> lines;
    std::vector<std::vector<std::string>> rows;
    int stage = 0;
    for (const auto& s : c.stages) {
      auto& l = lines[s.a];
      l.name = "branch " + modality_name(r, s.a) + " vs " + c.model;
      l.points.emplace_back(stage, s.cka.mean);
      rows.push_back({std::to_string(stage++), s.blob, s.blob_b, modality_name(r, s.a), num(s.cka.mean), num(s.cka.stddev())});
    }
    std::vector<svg::Series> series;
    for (auto& [m, l] : lines) series.push_back(l);
    cka_figure(page, "CKA with " + c.model, series, {"stage", "blob", "their blob", "branch", "CKA", "std over batches"},
               rows);
  }
}

void exchange(HtmlReport& page, const ProbeResult& r) {
  page.add_section("exchange", "Channel shuffle and pixel shift: what each branch receives");
  if (r.exchanges.empty()) {
    page.paragraph("This model has no ChannelShuffle or PixelShift layer.");
    return;
  }
  page.paragraph(
      "Share of a receiving branch's activation energy that comes from the other modality, summed over the test "
      "batches. Channel shuffle: energy of the received channels / energy of the whole top (beside it, the share of "
      "channels exchanged: what equal energy per channel would give). Pixel shift: |received|² / (|own|² + "
      "|received|²), per shift direction.");
  std::vector<std::string> layers;
  std::map<std::string, svg::BarSeries> by_direction;
  svg::BarSeries channel_share{"channel share (shuffle)", {}};
  std::vector<std::vector<double>> heat;
  std::vector<std::string> heat_rows, heat_cols;
  for (const auto& e : r.exchanges) {
    layers.push_back(e.layer);
    channel_share.values.push_back(e.type == "ChannelShuffle" ? 100 * e.channel_share : std::nan(""));
    for (const auto& d : e.directions) {
      std::string name = modality_name(r, d.receiver) + " ← " + modality_name(r, d.source);
      auto& s = by_direction[name];
      s.name = name;
      s.values.resize(layers.size() - 1, std::nan(""));
      s.values.push_back(100 * d.share());
      if (e.type == "PixelShift") {
        if (heat_cols.empty()) heat_cols = d.groups;
        if (d.groups == heat_cols) {
          heat_rows.push_back(e.layer + " " + name);
          std::vector<double> row;
          for (size_t g = 0; g < d.groups.size(); ++g) row.push_back(d.share(g));
          heat.push_back(row);
        }
      }
    }
  }
  std::vector<svg::BarSeries> series;
  for (auto& [name, s] : by_direction) {
    s.values.resize(layers.size(), std::nan(""));
    series.push_back(s);
  }
  series.push_back(channel_share);
  svg::BarChartOptions o;
  o.title = "energy received from the other modality (%)";
  o.y_label = "%";
  o.height = 340;
  o.width = std::max(800, 90 * static_cast<int>(layers.size()));
  page.figure(svg::bar_chart(layers, series, o));
  if (!heat.empty()) {
    svg::HeatmapOptions h;
    h.title = "pixel shift: received share per channel group";
    h.min = 0;
    h.max = 1;
    h.cell_values = true;
    h.height = std::max(220, 40 * static_cast<int>(heat.size()) + 120);
    page.figure(svg::heatmap(heat, heat_rows, heat_cols, h),
                "Each group of channels is shifted one way before it is added; the unshifted channels receive "
                "nothing.");
  }
}

void batch_norm(HtmlReport& page, const ProbeResult& r) {
  page.add_section("batchnorm", "Modality-specific BatchNorm");
  if (r.batch_norms.empty()) {
    page.paragraph("This model has no BatchNorm with modalities >= 2.");
    return;
  }
  page.paragraph(
      "Each modality normalises a channel with its own Gaussian N(running mean, running variance + eps). The "
      "distance between two modalities' Gaussians, per channel, averaged over the layer's channels: symmetric KL "
      "(nats) and the 2-Wasserstein distance divided by the pooled standard deviation (scale-free). Where they are "
      "large the modalities' features at that layer live on different scales; near 0 the private statistics could "
      "be shared.");
  std::map<std::pair<int, int>, std::pair<svg::Series, svg::Series>> lines;
  std::vector<std::vector<std::string>> rows;
  int index = 0;
  for (const auto& b : r.batch_norms) {
    for (const auto& p : b.pairs) {
      auto& [kl, w2] = lines[{p.a, p.b}];
      std::string pair = modality_name(r, p.a) + " vs " + modality_name(r, p.b);
      kl.name = w2.name = pair;
      kl.points.emplace_back(index, std::log10(std::max(p.median_symmetric_kl, 1e-12)));
      w2.points.emplace_back(index, p.mean_wasserstein_scaled);
      rows.push_back({std::to_string(index), b.layer, std::to_string(b.channels), pair, num(p.mean_symmetric_kl, "%.4g"),
                      num(p.median_symmetric_kl, "%.4g"), num(p.mean_wasserstein_scaled)});
    }
    ++index;
  }
  std::vector<svg::Series> w2s, kls;
  for (auto& [pair, s] : lines) w2s.push_back(s.second), kls.push_back(s.first);
  svg::LineChartOptions o;
  o.height = 280;
  o.x_label = "BatchNorm layer, in network order (table below)";
  o.title = "scale-free Wasserstein distance between the modalities' Gaussians (channel mean)";
  o.y_label = "W2 / pooled sd";
  page.figure(svg::line_chart(w2s, o));
  o.title = "symmetric KL (channel median), log10";
  o.y_label = "log10 nats";
  page.figure(svg::line_chart(kls, o));
  // The layer where the modalities differ most: its per-channel statistics.
  const BnStats* top = &r.batch_norms[0];
  for (const auto& b : r.batch_norms)
    if (!b.pairs.empty() && b.pairs[0].mean_symmetric_kl > top->pairs[0].mean_symmetric_kl) top = &b;
  std::vector<std::string> channels;
  for (int64_t c = 0; c < top->channels; ++c) channels.push_back(std::to_string(c));
  auto per_modality = [&](const std::vector<std::vector<double>>& rows_, const std::string& what) {
    std::vector<svg::BarSeries> s;
    for (size_t m = 0; m < rows_.size(); ++m) s.push_back({modality_name(r, static_cast<int>(m)) + " " + what, rows_[m]});
    return s;
  };
  svg::BarChartOptions b;
  b.height = 260;
  b.width = std::max(800, 24 * static_cast<int>(top->channels));
  b.title = top->layer + ": running mean per channel";
  page.figure(svg::bar_chart(channels, per_modality(top->mean, "mean"), b));
  b.title = top->layer + ": running variance per channel";
  page.figure(svg::bar_chart(channels, per_modality(top->variance, "variance"), b));
  if (!top->gamma.empty()) {
    b.title = top->layer + ": gamma per channel";
    page.figure(svg::bar_chart(channels, per_modality(top->gamma, "gamma"), b));
  }
  folded_table(page, "every layer", {"#", "layer", "channels", "modalities", "mean sym. KL", "median sym. KL", "mean W2 / sd"},
               rows);
}

void mmtm(HtmlReport& page, const ProbeResult& r) {
  page.add_section("mmtm", "MMTM gates");
  if (r.gates.empty()) {
    page.paragraph("This model has no MMTM layer.");
    return;
  }
  page.paragraph(
      "Each stream's gate gate_scale * sigmoid(e) per sample and channel (read off the layer as sum|top| / "
      "sum|bottom|). 1 leaves a channel as it was (an MMTM that does nothing), below 1 suppresses, above 1 excites.");
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : r.gates) {
    for (const auto& s : g.streams)
      rows.push_back({g.layer, s.bottom, std::to_string(s.channels), num(s.all.mean), num(s.all.stddev()),
                      num(s.all.min), num(s.all.max), num(s.mean_abs_from_one), std::to_string(s.undefined)});
  }
  page.table({"layer", "stream", "channels", "mean", "std", "min", "max", "mean |g - 1|", "no gate (zero input)"}, rows);
  for (const auto& g : r.gates) {
    for (const auto& s : g.streams) {
      std::vector<std::string> channels;
      for (int64_t c = 0; c < s.channels; ++c) channels.push_back(std::to_string(c));
      std::vector<double> mean, sd;
      for (const auto& m : s.per_channel) mean.push_back(m.count ? m.mean : std::nan("")), sd.push_back(m.stddev());
      svg::BarChartOptions b;
      b.title = g.layer + ", " + s.bottom + ": mean gate per channel";
      b.height = 240;
      b.width = std::max(800, 10 * static_cast<int>(s.channels));
      page.figure(svg::bar_chart(channels, {{"mean gate", mean}, {"std", sd}}, b));
      if (!s.class_mean.empty()) {
        std::vector<std::string> classes;
        for (size_t k = 0; k < s.class_mean.size(); ++k)
          classes.push_back("class " + std::to_string(k) + " (" + std::to_string(s.class_count[k]) + ")");
        svg::HeatmapOptions h;
        h.title = g.layer + ", " + s.bottom + ": mean gate per class and channel";
        h.scale = svg::ColourScale::diverging;
        h.centre = 1;
        h.width = std::max(600, 8 * static_cast<int>(s.channels) + 200);
        h.height = 60 * static_cast<int>(classes.size()) + 140;
        page.figure(svg::heatmap(s.class_mean, classes, channels, h),
                    "Red: the class excites the channel in this stream; blue: suppresses (the MMTM paper's analysis).");
      }
    }
  }
}

void ensemble(HtmlReport& page, const ProbeResult& r) {
  page.add_section("ensemble", "Ensemble weights");
  if (r.ensembles.empty()) {
    page.paragraph("This model has no ModalityEnsemble layer.");
    return;
  }
  for (const auto& e : r.ensembles) {
    std::vector<std::string> headers = {"layer"};
    std::vector<std::string> row = {e.layer};
    for (size_t m = 0; m < e.weights.size(); ++m)
      headers.push_back("softmax(alpha) " + modality_name(r, static_cast<int>(m))), row.push_back(num(e.weights[m], "%.4f"));
    page.table(headers, {row});
    if (e.path.empty()) {
      page.paragraph("No path over training: no metrics log with logged ensemble weights was found (give --log; "
                     "runs trained before this feature do not log them).");
      continue;
    }
    std::vector<svg::Series> series(e.weights.size());
    for (size_t m = 0; m < series.size(); ++m) series[m].name = modality_name(r, static_cast<int>(m));
    for (const auto& [iter, w] : e.path)
      for (size_t m = 0; m < series.size() && m < w.size(); ++m) series[m].points.emplace_back(iter, w[m]);
    svg::LineChartOptions o;
    o.title = e.layer + ": softmax(alpha) over training";
    o.x_label = "iteration";
    o.y_label = "weight";
    o.y_range = std::make_pair(0.0, 1.0);
    o.height = 260;
    page.figure(svg::line_chart(series, o));
  }
}

void dead(HtmlReport& page, const ProbeResult& r) {
  page.add_section("dead", "Blobs that are zero on every test batch");
  if (r.dead.empty()) {
    page.paragraph("None.");
    return;
  }
  page.paragraph("Zero on every test batch: what is computed from these alone is a constant, and the layers before "
                 "them do not reach the output through them (a ReLU that died in training shows here).");
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : r.dead) rows.push_back({d.blob, d.layer});
  page.table({"blob", "final value written by"}, rows, false);
}

void images(HtmlReport& page, const ProbeResult& r) {
  page.add_section("images", "Feature images");
  if (r.images.empty()) {
    page.paragraph("None (--samples 0).");
    return;
  }
  page.paragraph("The first samples of the first test batch: each modality's input, the predictions beside the ground "
                 "truth, then every fusion layer's input (before) and output (after) per modality — channels spread "
                 "evenly over C, each scaled to its own range (viridis). The PNG files are in images/.");
  // Groups in first-seen order: inputs and predictions, then one per fusion layer.
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::pair<std::vector<uint8_t>, std::string>>> groups;
  for (const auto& im : r.images) {
    std::string key = im.title.substr(0, im.title.find(' '));
    if (key == "input" || key == "ground" || key == "prediction") key = "inputs and predictions";
    if (!groups.count(key)) order.push_back(key);
    groups[key].emplace_back(encode_png(im.image), im.title);
  }
  for (const auto& key : order) {
    page.raw_html("<h3>" + svg::escape(key) + "</h3>");
    page.gallery(groups[key], "", 0);
  }
}

}  // namespace

std::string probe_html(const ProbeResult& r) {
  HtmlReport page("mmfuse probe: " + r.model);
  overview(page, r);
  ablations(page, r);
  similarity(page, r);
  comparisons(page, r);
  exchange(page, r);
  batch_norm(page, r);
  mmtm(page, r);
  ensemble(page, r);
  dead(page, r);
  images(page, r);
  return page.html();
}

}  // namespace mmfuse::probe
