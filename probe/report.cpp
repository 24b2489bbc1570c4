#include "probe/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "base/error.h"
#include "base/format.h"
#include "base/json.h"
#include "core/svg.h"

namespace mmfuse::probe {

namespace fs = std::filesystem;

namespace {

void moments(JsonWriter& j, const Moments& m) {
  j.key("mean").value(m.count ? m.mean : std::nan("")).key("std").value(m.stddev());
  j.key("min").value(m.count ? m.min : std::nan("")).key("max").value(m.count ? m.max : std::nan(""));
}

std::vector<double> column(const std::vector<Moments>& ms, bool stddev) {
  std::vector<double> out;
  for (const auto& m : ms) out.push_back(!m.count ? std::nan("") : stddev ? m.stddev() : m.mean);
  return out;
}

std::string pct(double v) { return format_number("%.1f%%", 100 * v); }

}  // namespace

std::string modality_name(const ProbeResult& r, int m) {
  return m >= 0 && m < static_cast<int>(r.modalities.size()) ? r.modalities[static_cast<size_t>(m)]
                                                              : "modality " + std::to_string(m);
}

std::string probe_json(const ProbeResult& r) {
  JsonWriter j;
  j.begin_object();
  j.key("schema").value("mmfuse-probe/1");
  j.key("model").value(r.model).key("weights").value(r.weights).key("iterations").value(r.iterations);
  j.key("modalities").value(r.modalities).key("metric").value(r.metric_name);

  j.key("batch_norm").begin_array();
  for (const auto& b : r.batch_norms) {
    j.begin_object().key("layer").value(b.layer).key("channels").value(b.channels).key("eps").value(b.eps);
    j.key("modalities").begin_array();
    for (size_t m = 0; m < b.mean.size(); ++m) {
      j.begin_object().key("mean").value(b.mean[m]).key("variance").value(b.variance[m]);
      if (!b.gamma.empty()) j.key("gamma").value(b.gamma[m]).key("beta").value(b.beta[m]);
      j.end_object();
    }
    j.end_array().key("pairs").begin_array();
    for (const auto& p : b.pairs)
      j.begin_object()
          .key("a").value(p.a).key("b").value(p.b)
          .key("mean_symmetric_kl").value(p.mean_symmetric_kl)
          .key("median_symmetric_kl").value(p.median_symmetric_kl)
          .key("mean_wasserstein_scaled").value(p.mean_wasserstein_scaled)
          .key("symmetric_kl").value(p.symmetric_kl)
          .key("wasserstein_scaled").value(p.wasserstein_scaled)
          .end_object();
    j.end_array().end_object();
  }
  j.end_array();

  j.key("exchange").begin_array();
  for (const auto& e : r.exchanges) {
    j.begin_object().key("layer").value(e.layer).key("type").value(e.type).key("channels").value(e.channels);
    if (e.type == "ChannelShuffle") j.key("channel_share").value(e.channel_share);
    j.key("directions").begin_array();
    for (const auto& d : e.directions) {
      j.begin_object().key("receiver").value(d.receiver).key("source").value(d.source).key("share").value(d.share());
      j.key("groups").begin_array();
      for (size_t g = 0; g < d.groups.size(); ++g)
        j.begin_object()
            .key("name").value(d.groups[g])
            .key("channels").value(d.group_channels[g])
            .key("own_energy").value(d.own[g])
            .key("received_energy").value(d.received[g])
            .key("share").value(d.share(g))
            .end_object();
      j.end_array().end_object();
    }
    j.end_array().end_object();
  }
  j.end_array();

  j.key("mmtm").begin_array();
  for (const auto& g : r.gates) {
    j.begin_object().key("layer").value(g.layer).key("gate_scale").value(g.gate_scale).key("streams").begin_array();
    for (const auto& s : g.streams) {
      j.begin_object().key("bottom").value(s.bottom).key("top").value(s.top).key("channels").value(s.channels);
      moments(j, s.all);
      j.key("mean_abs_from_one").value(s.mean_abs_from_one).key("max_abs_from_one").value(s.max_abs_from_one);
      j.key("undefined").value(s.undefined);
      j.key("channel_mean").value(column(s.per_channel, false)).key("channel_std").value(column(s.per_channel, true));
      j.key("class_count").begin_array();
      for (int64_t c : s.class_count) j.value(c);
      j.end_array().key("class_mean").begin_array();
      for (const auto& row : s.class_mean) j.value(row);
      j.end_array().end_object();
    }
    j.end_array().end_object();
  }
  j.end_array();

  j.key("cka").begin_array();
  for (const auto& c : r.cka) {
    j.begin_object().key("blob").value(c.blob);
    if (!c.blob_b.empty()) j.key("blob_b").value(c.blob_b);
    j.key("layer").value(c.layer).key("layer_index").value(c.layer_index).key("a").value(c.a).key("b").value(c.b);
    j.key("channels").value(c.channels).key("height").value(c.height).key("width").value(c.width);
    j.key("cka").value(c.cka.mean).key("cka_std").value(c.cka.stddev()).key("batches").value(c.cka.count);
    j.end_object();
  }
  j.end_array();

  j.key("compare").begin_array();
  for (const auto& c : r.comparisons) {
    j.begin_object().key("model").value(c.model).key("weights").value(c.weights).key("stages").begin_array();
    for (const auto& s : c.stages)
      j.begin_object()
          .key("blob").value(s.blob).key("blob_b").value(s.blob_b).key("modality").value(s.a)
          .key("layer_index").value(s.layer_index).key("channels").value(s.channels)
          .key("height").value(s.height).key("width").value(s.width)
          .key("cka").value(s.cka.mean).key("cka_std").value(s.cka.stddev()).key("batches").value(s.cka.count)
          .end_object();
    j.end_array().end_object();
  }
  j.end_array();

  j.key("ensemble").begin_array();
  for (const auto& e : r.ensembles) {
    j.begin_object().key("layer").value(e.layer).key("weights").value(e.weights).key("path").begin_array();
    for (const auto& [iter, w] : e.path) j.begin_object().key("iter").value(iter).key("weights").value(w).end_object();
    j.end_array().end_object();
  }
  j.end_array();

  j.key("ablations").begin_array();
  for (const auto& a : r.ablations) {
    j.begin_object().key("kind").value(a.kind).key("target").value(a.target).key("metrics").begin_object();
    for (const auto& [name, v] : a.metrics) j.key(name).value(v);
    j.end_object().end_object();
  }
  j.end_array();

  j.key("dead_blobs").begin_array();
  for (const auto& d : r.dead) j.begin_object().key("blob").value(d.blob).key("layer").value(d.layer).end_object();
  j.end_array();

  j.key("images").begin_array();
  for (const auto& im : r.images) j.begin_object().key("title").value(im.title).key("file").value(im.file).end_object();
  j.end_array();
  j.end_object();
  return j.str() + "\n";
}

std::string probe_summary(const ProbeResult& r) {
  std::vector<std::string> lines;
  if (!r.cka.empty()) {
    // From the first stage (the inputs, as a rule) to the last (the logits): how alike the
    // branches become.
    double mean = 0;
    for (const auto& c : r.cka) mean += c.cka.mean / static_cast<double>(r.cka.size());
    const CkaStage &first = r.cka.front(), &last = r.cka.back();
    lines.push_back("branch similarity (linear CKA): " + format_number("%.3f", first.cka.mean) + " at " + first.blob +
                    ", " + format_number("%.3f", last.cka.mean) + " at " + last.blob + "; mean " +
                    format_number("%.3f", mean) + " over " + std::to_string(r.cka.size()) + " stages");
  }
  if (!r.exchanges.empty()) {
    double shuffle = 0, shift = 0, nshuffle = 0, nshift = 0, channel_share = 0;
    for (const auto& e : r.exchanges)
      for (const auto& d : e.directions) {
        if (e.type == "ChannelShuffle") shuffle += d.share(), channel_share += e.channel_share, ++nshuffle;
        else shift += d.share(), ++nshift;
      }
    std::string line = "energy received from the other modality:";
    if (nshuffle) line += " channel shuffle " + pct(shuffle / nshuffle) + " (its channel share " + pct(channel_share / nshuffle) + ")";
    if (nshift) line += std::string(nshuffle ? "," : "") + " pixel shift " + pct(shift / nshift);
    lines.push_back(line + " (mean over layers and directions)");
  }
  if (!r.batch_norms.empty()) {
    const BnStats* top = nullptr;
    for (const auto& b : r.batch_norms)
      if (!b.pairs.empty() && (!top || b.pairs[0].mean_symmetric_kl > top->pairs[0].mean_symmetric_kl)) top = &b;
    if (top)
      lines.push_back("private BatchNorm: " + std::to_string(r.batch_norms.size()) +
                      " layers; the modalities' statistics differ most at " + top->layer + " (mean symmetric KL " +
                      format_number("%.3g", top->pairs[0].mean_symmetric_kl) + " nats per channel)");
  }
  for (const auto& g : r.gates) {
    std::string line = "MMTM " + g.layer + " gates:";
    for (const auto& s : g.streams)
      line += " " + s.bottom + " mean " + format_number("%.3f", s.all.mean) + " (|g-1| " + format_number("%.3f", s.mean_abs_from_one) + ")";
    lines.push_back(line);
    break;  // the first; the page has every one
  }
  if (r.ablations.size() > 1 && !r.ablations[0].metrics.empty()) {
    const auto& base = r.ablations[0].metrics;
    std::string metric = base.back().first;
    const Ablation* worst = nullptr;
    double drop = 0;
    for (const auto& a : r.ablations)
      if (!a.metrics.empty() && base.back().second - a.metrics.back().second >= drop)
        drop = base.back().second - a.metrics.back().second, worst = &a;
    if (worst && worst != &r.ablations[0])
      lines.push_back(r.metric_name + " " + format_number("%.2f", base.back().second) + " (" + metric +
                      "); the largest drop: " + worst->kind + (worst->target.empty() ? "" : " " + worst->target) + " -> " +
                      format_number("%.2f", worst->metrics.back().second));
  }
  for (const auto& e : r.ensembles) {
    std::string line = "ensemble " + e.layer + " weights:";
    for (size_t m = 0; m < e.weights.size(); ++m)
      line.append(" ").append(modality_name(r, static_cast<int>(m))).append(" ").append(format_number("%.3f", e.weights[m]));
    lines.push_back(line);
  }
  if (!r.dead.empty())
    lines.insert(lines.begin(), std::to_string(r.dead.size()) + " blobs are zero on every test batch, first " +
                                    r.dead[0].blob + " (after " + r.dead[0].layer +
                                    "): what is computed from them alone is constant");
  if (lines.size() > 5) lines.resize(5);
  std::string out;
  for (const auto& l : lines) out += "  " + l + "\n";
  return out;
}

void write_probe(const ProbeResult& result, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "images", ec);
  MMF_CHECK(!ec, IOError, dir, ": cannot create the folder (", ec.message(), ")");
  for (const auto& im : result.images) write_png((fs::path(dir) / im.file).string(), im.image);
  svg::write_file((fs::path(dir) / "probe.json").string(), probe_json(result));
  svg::write_file((fs::path(dir) / "index.html").string(), probe_html(result));
}

}  // namespace mmfuse::probe
