// The figures read off the parameters alone: private BatchNorm statistics and the distance
// between the modalities' Gaussians, the ensembles' weights and their path in the metrics log.
#include <algorithm>
#include <fstream>

#include "base/error.h"
#include "core/metrics_log.h"
#include "probe/probe.h"

namespace mmfuse::probe {

std::vector<BnStats> batch_norm_stats(const Net& net) {
  std::vector<BnStats> out;
  for (const auto& layer : net.layers()) {
    if (layer->type() != "BatchNorm") continue;
    const auto& p = layer->layer_param().batch_norm_param();
    int64_t M = p.modalities();
    if (M < 2) continue;
    BnStats s;
    s.layer = layer->name();
    s.eps = p.eps();
    auto rows = [&](size_t i) {
      std::vector<double> v = layer->param(i).to_vector<double>();
      int64_t C = static_cast<int64_t>(v.size()) / M;
      s.channels = C;
      std::vector<std::vector<double>> r(static_cast<size_t>(M));
      for (int64_t m = 0; m < M; ++m) r[m].assign(v.begin() + m * C, v.begin() + (m + 1) * C);
      return r;
    };
    s.mean = rows(0);
    s.variance = rows(1);
    if (p.affine()) {
      s.gamma = rows(2);
      s.beta = rows(3);
    }
    for (int a = 0; a < M; ++a)
      for (int b = a + 1; b < M; ++b) {
        BnPair pair;
        pair.a = a;
        pair.b = b;
        for (int64_t c = 0; c < s.channels; ++c) {
          GaussianDistance g =
              gaussian_distance(s.mean[a][c], s.variance[a][c] + s.eps, s.mean[b][c], s.variance[b][c] + s.eps);
          pair.symmetric_kl.push_back(g.symmetric_kl);
          pair.wasserstein_scaled.push_back(g.wasserstein_scaled);
        }
        std::vector<double> kl = pair.symmetric_kl;
        std::sort(kl.begin(), kl.end());
        double n = static_cast<double>(kl.size());
        for (size_t c = 0; c < kl.size(); ++c) {
          pair.mean_symmetric_kl += kl[c] / n;
          pair.mean_wasserstein_scaled += pair.wasserstein_scaled[c] / n;
        }
        pair.median_symmetric_kl = kl.empty() ? 0 : (kl[(kl.size() - 1) / 2] + kl[kl.size() / 2]) / 2;
        s.pairs.push_back(std::move(pair));
      }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<EnsembleStats> ensemble_stats(const Net& net, const std::string& metrics_log) {
  std::vector<EnsembleStats> out;
  for (const auto& layer : net.layers()) {
    if (layer->type() != "ModalityEnsemble") continue;
    EnsembleStats e;
    e.layer = layer->name();
    e.weights = layer->logged_figures();
    out.push_back(std::move(e));
  }
  if (metrics_log.empty() || out.empty()) return out;
  std::ifstream in(metrics_log);
  MMF_CHECK(in.good(), IOError, metrics_log, ": cannot read the metrics log");
  std::string line;
  while (std::getline(in, line)) {
    double iter = 0;
    if (!record_number(line, "iter", iter)) continue;
    for (auto& e : out) {
      std::vector<double> w;
      if (record_array(line, "layers", e.layer, w)) e.path.emplace_back(static_cast<int64_t>(iter), w);
    }
  }
  return out;
}

}  // namespace mmfuse::probe
