// The statistics pass of run_probe: K TEST forwards with hooks that read the fusion layers'
// bottoms and tops (shuffle/shift energy, MMTM gates, CKA between branches) and keep the first
// batch's feature images, and runs the compared models on the same batches. The figures of
// the parameters alone are in parameters.cpp; run_probe ties everything together.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "base/error.h"
#include "core/ops.h"
#include "probe/images.h"
#include "probe/net_map.h"
#include "probe/probe.h"

namespace mmfuse::probe {

namespace {

// An [M*N, C, ...] (M modalities stacked) or [N, C, ...] tensor on the host.
struct HostBlob {
  std::vector<double> v;
  int64_t batch = 0, channels = 1, positions = 1;
  explicit HostBlob(const Tensor& t) : v(t.to_vector<double>()) {
    const Shape& s = t.shape();
    batch = s.empty() ? 1 : s[0];
    channels = s.size() > 1 ? s[1] : 1;
    for (size_t d = 2; d < s.size(); ++d) positions *= s[d];
  }
  double at(int64_t n, int64_t c, int64_t p) const { return v[static_cast<size_t>((n * channels + c) * positions + p)]; }
  // Energy of samples [n0, n0 + count) over channels [c0, c1).
  double energy(int64_t n0, int64_t count, int64_t c0, int64_t c1) const {
    double s = 0;
    for (int64_t n = n0; n < n0 + count; ++n)
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t p = 0; p < positions; ++p) s += at(n, c, p) * at(n, c, p);
    return s;
  }
  // Rows (sample, position) of samples [n0, n0 + count), every `step`-th, as [rows, C].
  std::vector<double> rows(int64_t n0, int64_t count, int64_t step) const {
    MMF_CHECK(n0 >= 0 && n0 + count <= batch, Error, "probe: samples [", n0, ", ", n0 + count, ") of a batch of ", batch);
    std::vector<double> out;
    for (int64_t r = 0; r < count * positions; r += step) {
      int64_t n = n0 + r / positions, p = r % positions;
      for (int64_t c = 0; c < channels; ++c) out.push_back(at(n, c, p));
    }
    return out;
  }
};

std::vector<int64_t> receivers_of(const google::protobuf::RepeatedField<int32_t>& r, int64_t M) {
  std::vector<int64_t> out(r.begin(), r.end());
  if (out.empty())
    for (int64_t m = 0; m < M; ++m) out.push_back(m);
  return out;
}

// Per-batch CKA where a batch has enough rows, else the rows of every batch pooled.
constexpr int64_t kMinRowsPerBatch = 256;

struct CkaAccumulator {
  CkaStage stage;
  int64_t channels_b = 0;  // Y's channels (stage.channels: X's)
  std::vector<double> pooled_a, pooled_b;
  int64_t pooled_rows = 0;
  void add(const HostBlob& x, int64_t na, const HostBlob& y, int64_t nb, int64_t count, int64_t cap) {
    int64_t total = count * x.positions;
    if (total >= kMinRowsPerBatch) {
      int64_t step = std::max<int64_t>(1, (total + cap - 1) / cap);
      std::vector<double> a = x.rows(na, count, step), b = y.rows(nb, count, step);
      double v = linear_cka(a, x.channels, b, y.channels, static_cast<int64_t>(a.size()) / x.channels);
      if (std::isfinite(v)) stage.cka.add(v);
    } else {
      std::vector<double> a = x.rows(na, count, 1), b = y.rows(nb, count, 1);
      pooled_a.insert(pooled_a.end(), a.begin(), a.end());
      pooled_b.insert(pooled_b.end(), b.begin(), b.end());
      pooled_rows += total;
    }
  }
  void finish() {
    if (pooled_rows < 2) return;
    double v = linear_cka(pooled_a, stage.channels, pooled_b, channels_b, pooled_rows);
    if (std::isfinite(v)) stage.cka.add(v);
  }
};

class Collector {
 public:
  Collector(Net& net, const NetMap& map, const ProbeOptions& options, ProbeResult& result,
            const std::vector<Compared>& compared)
      : net_(net), map_(map), options_(options), result_(result), compared_(compared), compare_(compared.size()) {
    // The compared nets' modality inputs, where they have a multimodal data layer.
    for (const Compared& c : compared_) {
      try {
        their_maps_.emplace_back(map_net(*c.net));
      } catch (const Error&) {
        their_maps_.emplace_back(std::nullopt);  // nothing to match by modality name
      }
    }
  }

  void run() {
    Net::Hooks hooks{nullptr, [this](size_t i, TensorList& tops) { after(i, tops); }};
    autograd::NoGradGuard no_grad;
    for (iteration_ = 0; iteration_ < options_.iterations; ++iteration_) {
      stream_stash_.clear();
      auto blobs = net_.forward({}, iteration_, &hooks);
      if (iteration_ == 0 && options_.image_samples > 0) add_prediction_images(net_, map_, blobs, labels_, options_, result_.images);
      for (size_t k = 0; k < compared_.size(); ++k) compare(k, blobs);
    }
    auto by_order = [](const CkaStage& x, const CkaStage& y) {
      return std::tie(x.layer_index, x.blob, x.a, x.b) < std::tie(y.layer_index, y.blob, y.a, y.b);
    };
    for (auto& [key, acc] : cka_) {
      acc.finish();
      if (acc.stage.cka.count > 0) result_.cka.push_back(acc.stage);
    }
    std::sort(result_.cka.begin(), result_.cka.end(), by_order);
    for (size_t k = 0; k < compared_.size(); ++k) {
      Comparison c{compared_[k].model, compared_[k].weights, {}};
      for (auto& [key, acc] : compare_[k]) {
        acc.finish();
        if (acc.stage.cka.count > 0) c.stages.push_back(acc.stage);
      }
      std::sort(c.stages.begin(), c.stages.end(), by_order);
      result_.comparisons.push_back(std::move(c));
    }
    for (auto& g : result_.gates)
      for (auto& s : g.streams) finish_gates(s);
    for (const auto& name : net_.blob_names())
      if (auto it = peak_.find(name); it != peak_.end() && it->second.second == 0)
        result_.dead.push_back({name, net_.layers()[it->second.first]->name()});
  }

 private:
  int64_t M() const { return map_.modality_count(); }
  Tensor bottom(size_t i, size_t k) const { return net_.blob(net_.bottom_names(i).at(k)); }

  void after(size_t i, TensorList& tops) {
    const Layer& layer = *net_.layers()[i];
    if (i == map_.data_layer) read_data(tops);
    track_stacking(i, tops);
    if (layer.type() == "ChannelShuffle") shuffle_energy(i, tops[0]);
    if (layer.type() == "PixelShift") shift_energy(i, tops[0]);
    if (layer.type() == "MMTM") gates(i, tops);
    if (iteration_ == 0 && options_.image_samples > 0 && is_fusion_type(layer.type()))
      add_fusion_images(net_, map_, i, tops, options_, result_.images);
    for (size_t t = 0; t < tops.size(); ++t) {
      if (!map_.writes_final(net_, i, t) || !is_floating(tops[t].dtype())) continue;
      if (tops[t].dim() >= 2) cka_stage(i, t, tops[t]);
      double& peak = peak_.try_emplace(net_.top_names(i)[t], i, 0.0).first->second.second;
      peak = std::max(peak, max(abs(tops[t])).item());
    }
  }

  void read_data(const TensorList& tops) {
    labels_.clear();
    if (map_.label_top < 0) return;
    const Tensor& label = tops.at(static_cast<size_t>(map_.label_top));
    if (label.dim() == 1) labels_ = label.to_vector<double>();  // classification: one class per sample
    if (iteration_ == 0 && options_.image_samples > 0) add_input_images(map_, tops, options_, result_.images);
  }

  // A blob is modality-stacked when it comes from a stacked data top or a ModalityStack and
  // keeps the batch of a stacked bottom; ModalityEnsemble and ModalitySplit end the stacking.
  void track_stacking(size_t i, const TensorList& tops) {
    const Layer& layer = *net_.layers()[i];
    const auto& names = net_.top_names(i);
    int64_t batch = -1;  // of a stacked bottom (read before an in-place top rebinds the name)
    for (size_t k = 0; k < net_.bottom_names(i).size(); ++k)
      if (stacked_.count(net_.bottom_names(i)[k]) && bottom(i, k).dim() > 0) batch = bottom(i, k).shape()[0];
    for (size_t t = 0; t < tops.size(); ++t) stacked_.erase(names[t]);
    if (i == map_.data_layer) {
      if (map_.stacked) stacked_.insert(names[0]);
      return;
    }
    if (layer.type() == "ModalityStack") {
      stacked_.insert(names[0]);
      return;
    }
    if (layer.type() == "ModalityEnsemble" || layer.type() == "ModalitySplit" || batch < 0) return;
    for (size_t t = 0; t < tops.size(); ++t)
      if (tops[t].dim() > 0 && tops[t].shape()[0] == batch) stacked_.insert(names[t]);
  }

  ExchangeStats& exchange(size_t i, const std::string& type, int64_t channels) {
    const std::string& name = net_.layers()[i]->name();
    for (auto& e : result_.exchanges)
      if (e.layer == name) return e;
    ExchangeStats e;
    e.layer = name;
    e.type = type;
    e.channels = channels;
    result_.exchanges.push_back(e);
    return result_.exchanges.back();
  }

  void shuffle_energy(size_t i, const Tensor& top) {
    const auto& p = net_.layers()[i]->layer_param().channel_shuffle_param();
    HostBlob y(top);
    int64_t C = y.channels, k = channel_shuffle_kept(C, p.keep_ratio()), N = y.batch / p.modalities();
    ExchangeStats& e = exchange(i, "ChannelShuffle", C);
    e.channel_share = static_cast<double>(C - k) / static_cast<double>(C);
    std::vector<int64_t> receivers = receivers_of(p.receivers(), p.modalities());
    if (e.directions.empty())
      for (int64_t m : receivers) {
        ExchangeDirection d;
        d.receiver = static_cast<int>(m);
        d.source = static_cast<int>((m + 1) % p.modalities());
        d.groups = {"kept", "received"};
        d.group_channels = {k, C - k};
        d.own.assign(2, 0.0);
        d.received.assign(2, 0.0);
        e.directions.push_back(d);
      }
    for (auto& d : e.directions) {
      d.own[0] += y.energy(d.receiver * N, N, 0, k);
      d.received[1] += y.energy(d.receiver * N, N, k, C);
    }
  }

  void shift_energy(size_t i, const Tensor& top) {
    const auto& p = net_.layers()[i]->layer_param().pixel_shift_param();
    HostBlob own(bottom(i, 0)), sum(top);
    HostBlob received = sum;
    for (size_t j = 0; j < received.v.size(); ++j) received.v[j] -= own.v[j];
    int64_t C = own.channels, groups = p.groups(), g = C / (groups + 1), N = own.batch / p.modalities();
    ExchangeStats& e = exchange(i, "PixelShift", C);
    static const char* directions[] = {"down", "right", "left", "up"};
    if (e.directions.empty())
      for (int64_t m : receivers_of(p.receivers(), p.modalities())) {
        ExchangeDirection d;
        d.receiver = static_cast<int>(m);
        d.source = static_cast<int>((m + 1) % p.modalities());
        for (int64_t q = 0; q < groups; ++q) {
          d.groups.push_back(std::string(directions[q % 4]) + (q >= 4 ? " x" + std::to_string(1 << (q / 4)) : ""));
          d.group_channels.push_back(g);
        }
        d.groups.push_back("unshifted");
        d.group_channels.push_back(C - groups * g);
        d.own.assign(d.groups.size(), 0.0);
        d.received.assign(d.groups.size(), 0.0);
        e.directions.push_back(d);
      }
    for (auto& d : e.directions)
      for (int64_t q = 0; q <= groups; ++q) {
        int64_t c0 = q * g, c1 = q < groups ? c0 + g : C;
        d.own[q] += own.energy(d.receiver * N, N, c0, c1);
        d.received[q] += received.energy(d.receiver * N, N, c0, c1);
      }
  }

  void gates(size_t i, const TensorList& tops) {
    const Layer& layer = *net_.layers()[i];
    GateStats* stats = nullptr;
    for (auto& g : result_.gates)
      if (g.layer == layer.name()) stats = &g;
    if (!stats) {
      GateStats g;
      g.layer = layer.name();
      g.gate_scale = layer.layer_param().mmtm_param().gate_scale();
      for (size_t m = 0; m < tops.size(); ++m) {
        GateStream s;
        s.bottom = net_.bottom_names(i)[m];
        s.top = net_.top_names(i)[m];
        s.channels = tops[m].shape()[1];
        s.per_channel.resize(static_cast<size_t>(s.channels));
        g.streams.push_back(s);
      }
      result_.gates.push_back(g);
      stats = &result_.gates.back();
    }
    for (size_t m = 0; m < tops.size(); ++m) {
      GateStream& s = stats->streams[m];
      HostBlob x(bottom(i, m)), y(tops[m]);
      for (int64_t n = 0; n < x.batch; ++n) {
        int64_t cls = n < static_cast<int64_t>(labels_.size()) ? static_cast<int64_t>(labels_[n]) : -1;
        if (cls >= 0 && cls >= static_cast<int64_t>(s.class_count.size())) {
          s.class_count.resize(static_cast<size_t>(cls + 1), 0);
          s.class_mean.resize(static_cast<size_t>(cls + 1), std::vector<double>(static_cast<size_t>(s.channels), 0.0));
        }
        if (cls >= 0) ++s.class_count[cls];
        for (int64_t c = 0; c < x.channels; ++c) {
          double in = 0, out = 0;
          for (int64_t p = 0; p < x.positions; ++p) {
            in += std::abs(x.at(n, c, p));
            out += std::abs(y.at(n, c, p));
          }
          if (!(in > 0)) {
            ++s.undefined;
            continue;
          }
          double gate = out / in;
          s.per_channel[c].add(gate);
          s.all.add(gate);
          s.mean_abs_from_one += std::abs(gate - 1);
          s.max_abs_from_one = std::max(s.max_abs_from_one, std::abs(gate - 1));
          if (cls >= 0) s.class_mean[cls][c] += gate;  // divided by the count in finish_gates
        }
      }
    }
  }

  static void finish_gates(GateStream& s) {
    if (s.all.count > 0) s.mean_abs_from_one /= static_cast<double>(s.all.count);
    for (size_t k = 0; k < s.class_mean.size(); ++k)
      for (auto& v : s.class_mean[k]) v = s.class_count[k] ? v / static_cast<double>(s.class_count[k]) : std::nan("");
  }

  // Compared model k on the same batch: each of its blobs against this net's blob of the same
  // name (modality m's slice of a stacked one, or all of it), or against modality m's slice of
  // X for its "<m>.X" / "X.<m>".
  void compare(size_t k, const std::map<std::string, Tensor>& blobs) {
    Net& other = *compared_[k].net;
    auto theirs = other.forward({}, iteration_);
    int64_t cap = std::max<int64_t>(1, options_.cka_rows);
    compare_inputs(k, blobs, theirs, cap);
    for (const auto& name : other.blob_names()) {
      const Tensor& y = theirs.at(name);
      if (!is_floating(y.dtype()) || y.dim() < 2) continue;
      std::string mine = name;
      int64_t modality = -1;
      // Each modality's first reading of the name, in order, until one names a blob of ours.
      for (const StreamName& s : map_.stream_names(name)) {
        if (blobs.count(mine)) break;
        if (s.modality == modality) continue;
        mine = s.rest, modality = s.modality;
      }
      auto it = blobs.find(mine);
      if (it == blobs.end() || !is_floating(it->second.dtype())) continue;
      const Tensor& x = it->second;
      if (x.dim() != y.dim() || x.dim() < 2 || !std::equal(x.shape().begin() + 2, x.shape().end(), y.shape().begin() + 2))
        continue;
      int64_t n = y.shape()[0], order = static_cast<int64_t>(map_.last_writer.count(mine) ? map_.last_writer.at(mine) : 0);
      HostBlob hx(x), hy(y);
      auto add = [&](int64_t m, int64_t x0, int64_t y0, int64_t count) {
        std::string key = name + "#" + std::to_string(m);
        auto [at, fresh] = compare_[k].try_emplace(key);
        CkaAccumulator& acc = at->second;
        if (fresh) {
          acc.stage.blob = mine;
          acc.stage.blob_b = name;
          acc.stage.layer_index = order;
          acc.stage.a = static_cast<int>(m);
          acc.stage.b = -1;
          acc.stage.channels = hx.channels;
          acc.stage.height = x.dim() > 2 ? x.shape()[2] : 1;
          acc.stage.width = x.dim() > 3 ? x.shape()[3] : 1;
          acc.channels_b = hy.channels;
        }
        acc.add(hx, x0, hy, y0, count, cap);
      };
      bool stacked = stacked_.count(mine) > 0;
      if (stacked && x.shape()[0] == M() * n) {  // modality slices of ours against all of theirs
        for (int64_t m = 0; m < M(); ++m)
          if (modality < 0 || modality == m) add(m, m * n, 0, n);
      } else if (x.shape()[0] == n) {
        if (stacked) {  // both stacked alike: slice against slice
          for (int64_t m = 0; m < M(); ++m) add(m, m * (n / M()), m * (n / M()), n / M());
        } else {
          add(modality, 0, 0, n);
        }
      }
    }
  }

  // The modality inputs the two models share by name (the first stage: near 1 when both drew
  // the same samples).
  void compare_inputs(size_t k, const std::map<std::string, Tensor>& blobs, const std::map<std::string, Tensor>& theirs,
                      int64_t cap) {
    if (!their_maps_[k]) return;
    const Net& other = *compared_[k].net;
    const NetMap& them = *their_maps_[k];
    // Modality m's input of a net: its stacked top's slice or its own top -> (tensor, first row, rows).
    auto input = [](const Net& net, const NetMap& map, const std::map<std::string, Tensor>& values, int64_t m) {
      const auto& tops = net.top_names(map.data_layer);
      const Tensor& t = values.at(tops.at(map.stacked ? map.modality_tops[0] : map.modality_tops.at(static_cast<size_t>(m))));
      int64_t n = map.stacked ? t.shape()[0] / map.modality_count() : t.shape()[0];
      return std::make_tuple(t, map.stacked ? m * n : 0, n);
    };
    for (int64_t m = 0; m < M(); ++m)
      for (int64_t o = 0; o < them.modality_count(); ++o) {
        if (them.modality(o) != map_.modality(m)) continue;
        auto [x, x0, n] = input(net_, map_, blobs, m);
        auto [y, y0, ny] = input(other, them, theirs, o);
        if (n != ny || x.dim() != y.dim() || !std::equal(x.shape().begin() + 2, x.shape().end(), y.shape().begin() + 2))
          continue;
        HostBlob hx(x), hy(y);
        auto [at, fresh] = compare_[k].try_emplace("input#" + std::to_string(m));
        if (fresh) {
          at->second.stage = {"input " + map_.modality(m), "input " + them.modality(o), "data", -1, static_cast<int>(m), -1,
                              hx.channels, x.dim() > 2 ? x.shape()[2] : 1, x.dim() > 3 ? x.shape()[3] : 1, {}};
          at->second.channels_b = hy.channels;
        }
        at->second.add(hx, x0, hy, y0, n, cap);
      }
  }

  CkaAccumulator& accumulator(const std::string& key, size_t i, const std::string& blob, const std::string& blob_b,
                              int a, int b, const Tensor& t) {
    auto it = cka_.find(key);
    if (it != cka_.end()) return it->second;
    CkaAccumulator acc;
    acc.channels_b = t.shape()[1];
    acc.stage.blob = blob;
    acc.stage.blob_b = blob_b;
    acc.stage.layer = net_.layers()[i]->name();
    acc.stage.layer_index = static_cast<int64_t>(i);
    acc.stage.a = a;
    acc.stage.b = b;
    acc.stage.channels = t.shape()[1];
    acc.stage.height = t.dim() > 2 ? t.shape()[2] : 1;
    acc.stage.width = t.dim() > 3 ? t.shape()[3] : 1;
    return cka_.emplace(key, acc).first->second;
  }

  // A stacked blob: every pair of its modality slices. A per-stream blob "<modality>.<rest>"
  // (or "<rest>.<modality>", as MMTM's tops): kept until every modality's has arrived, then
  // every pair.
  void cka_stage(size_t i, size_t t, const Tensor& value) {
    const std::string& name = net_.top_names(i)[t];
    int64_t cap = std::max<int64_t>(1, options_.cka_rows);
    if (stacked_.count(name)) {
      HostBlob x(value);
      int64_t N = x.batch / M();
      for (int a = 0; a < M(); ++a)
        for (int b = a + 1; b < M(); ++b)
          accumulator(name + "#" + std::to_string(a) + "," + std::to_string(b), i, name, "", a, b, value)
              .add(x, a * N, x, b * N, N, cap);
      return;
    }
    std::vector<StreamName> readings = map_.stream_names(name);
    if (readings.empty()) return;
    const StreamName& s = readings.front();
    std::string key = (s.prefix ? "<." : ".>") + s.rest;
    auto& got = stream_stash_[key];
    got[s.modality] = value;
    if (static_cast<int64_t>(got.size()) < M()) return;
    for (int a = 0; a < M(); ++a)
      for (int b = a + 1; b < M(); ++b) {
        const Tensor &ta = got[a], &tb = got[b];
        if (ta.shape() != tb.shape()) continue;
        HostBlob xa(ta), xb(tb);
        std::string na = map_.stream_blob(s, a), nb = map_.stream_blob(s, b);
        accumulator(na + "#" + nb, i, na, nb, a, b, ta).add(xa, 0, xb, 0, xa.batch, cap);
      }
    stream_stash_.erase(key);
  }

  Net& net_;
  const NetMap& map_;
  const ProbeOptions& options_;
  ProbeResult& result_;
  int iteration_ = 0;
  std::vector<double> labels_;
  std::set<std::string> stacked_;
  std::map<std::string, CkaAccumulator> cka_;
  std::map<std::string, std::map<int64_t, Tensor>> stream_stash_;
  std::map<std::string, std::pair<size_t, double>> peak_;  // blob -> (final writer, max |value| so far)
  const std::vector<Compared>& compared_;
  std::vector<std::map<std::string, CkaAccumulator>> compare_;  // per compared model
  std::vector<std::optional<NetMap>> their_maps_;               // per compared model
};

}  // namespace

double ExchangeDirection::share() const {
  double o = 0, r = 0;
  for (size_t g = 0; g < own.size(); ++g) o += own[g], r += received[g];
  return o + r > 0 ? r / (o + r) : 0;
}

double ExchangeDirection::share(size_t group) const {
  double t = own.at(group) + received.at(group);
  return t > 0 ? received[group] / t : 0;
}

std::string metric_name_of(Net& net) {
  for (const auto& layer : net.layers())
    if (layer->sums_metric_state()) return "mIoU";
  return "accuracy";
}

ProbeResult run_probe(Net& net, const ProbeOptions& options, const std::vector<Compared>& compared) {
  MMF_CHECK(options.iterations > 0, Error, "probe: --iterations must be positive, got ", options.iterations);
  NetMap map = map_net(net);
  ProbeResult result;
  result.iterations = options.iterations;
  result.modalities = map.modalities;
  result.metric_name = metric_name_of(net);
  result.batch_norms = batch_norm_stats(net);
  result.ensembles = ensemble_stats(net, options.metrics_log);
  Collector(net, map, options, result, compared).run();
  if (options.ablations) result.ablations = run_ablations(net, options);
  return result;
}

}  // namespace mmfuse::probe
