// Test-time ablations: the test set re-scored with the model's own metric while a forward hook
// turns one thing off — a fusion layer (its tops replaced by its bottoms: shuffle -> identity,
// shift-add -> no add, MMTM gate -> 1), one modality's input (zeroed, replaced by noise of its
// own per-channel mean and spread, or swapped with the next sample's), or an ensemble (replaced
// by one branch's logits).
#include <cmath>
#include <cstdlib>
#include <functional>

#include "base/error.h"
#include "core/evaluate.h"
#include "core/ops.h"
#include "probe/net_map.h"
#include "probe/probe.h"

namespace mmfuse::probe {

namespace {

using Edit = std::function<void(size_t layer, TensorList& tops)>;

// Modality m of x replaced by f(its slice): a stacked top, or the modality's own top.
Tensor replace_modality(const Tensor& x, int64_t m, int64_t M, bool stacked,
                        const std::function<Tensor(const Tensor&)>& f) {
  if (!stacked) return f(x);
  TensorList parts = modality_split(x, M);
  parts[static_cast<size_t>(m)] = f(parts[static_cast<size_t>(m)]);
  return modality_stack(parts);
}

// Gaussian noise with each channel's mean and standard deviation over the batch.
Tensor channel_noise(const Tensor& x, Generator& gen) {
  std::vector<double> v = x.to_vector<double>();
  const Shape& s = x.shape();
  int64_t N = s[0], C = s.size() > 1 ? s[1] : 1, P = static_cast<int64_t>(v.size()) / std::max<int64_t>(1, N * C);
  std::vector<double> z = Tensor::randn(s, gen, 0, 1, DType::f64).to_vector<double>();
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0, sq = 0, n = static_cast<double>(N * P);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t p = 0; p < P; ++p) sum += v[(i * C + c) * P + p];
    double mean = sum / n;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t p = 0; p < P; ++p) sq += (v[(i * C + c) * P + p] - mean) * (v[(i * C + c) * P + p] - mean);
    double sd = std::sqrt(sq / n);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t p = 0; p < P; ++p) z[(i * C + c) * P + p] = mean + sd * z[(i * C + c) * P + p];
  }
  return Tensor::from_vector(z, s, x.dtype(), x.device());
}

// Sample i gets sample (i + 1) mod N: each sample's modality paired with another scene.
Tensor swap_samples(const Tensor& x) {
  int64_t N = x.shape()[0];
  if (N < 2) return x;
  return concat({slice(x, 0, 1, N), slice(x, 0, 0, 1)}, 0);
}

// A metric row "<blob> branch <m>" (a stacked metric layer's row m) named by its modality.
std::string row_name(const std::string& name, const NetMap& map) {
  size_t at = name.rfind(" branch ");
  if (at == std::string::npos) return name;
  char* end = nullptr;
  long m = std::strtol(name.c_str() + at + 8, &end, 10);
  if (*end != '\0' || m < 0 || m >= map.modality_count()) return name;
  return name.substr(0, at) + " (" + map.modality(m) + ")";
}

std::vector<std::pair<std::string, double>> own_metrics(const Net& net, const NetMap& map, const TestResult& r) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& s : r.segmentation) out.emplace_back(row_name(s.name, map), s.mean_iou);
  if (!out.empty()) return out;
  for (const auto& [name, value] : r.outputs)
    if (loss_weight_of(net, name) == 0) out.emplace_back(name, 100 * value);
  return out;
}

}  // namespace

std::vector<Ablation> run_ablations(Net& net, const ProbeOptions& options) {
  NetMap map = map_net(net);
  int64_t M = map.modality_count();
  std::vector<Ablation> out;
  auto score = [&](const std::string& kind, const std::string& target, const Edit& edit) {
    Net::Hooks hooks{nullptr, edit};
    TestResult r = evaluate(net, options.iterations, "probe", edit ? &hooks : nullptr);
    out.push_back({kind, target, own_metrics(net, map, r)});
  };
  score("baseline", "", nullptr);

  for (size_t i : map.fusion_layers)
    score("fusion off", net.layers()[i]->name(), [&net, i](size_t layer, TensorList& tops) {
      if (layer != i) return;
      for (size_t k = 0; k < tops.size(); ++k) tops[k] = net.blob(net.bottom_names(i).at(k));
    });

  for (int64_t m = 0; m < M; ++m) {
    size_t top = map.stacked ? map.modality_tops[0] : map.modality_tops.at(static_cast<size_t>(m));
    auto modality_edit = [&, m, top](std::function<Tensor(const Tensor&)> f) -> Edit {
      return [&map, m, top, M, f](size_t layer, TensorList& tops) {
        if (layer == map.data_layer) tops[top] = replace_modality(tops[top], m, M, map.stacked, f);
      };
    };
    score("modality zeroed", map.modality(m),
          modality_edit([](const Tensor& x) { return Tensor::zeros(x.shape(), x.dtype(), x.device()); }));
    Generator gen(options.seed);
    score("modality noise", map.modality(m), modality_edit([&gen](const Tensor& x) { return channel_noise(x, gen); }));
    score("modality swapped", map.modality(m), modality_edit(swap_samples));
  }

  for (size_t e : map.ensembles) {
    int64_t branches = net.layers()[e]->layer_param().modality_ensemble_param().modalities();
    for (int64_t m = 0; m < branches; ++m)
      score("ensemble → branch", net.layers()[e]->name() + " → " + map.modality(m), [&net, e, m, branches](size_t layer, TensorList& tops) {
        if (layer == e) tops[0] = modality_split(net.blob(net.bottom_names(e).at(0)), branches)[static_cast<size_t>(m)];
      });
  }
  return out;
}

}  // namespace mmfuse::probe
