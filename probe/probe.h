// `mmfuse probe`: what the fusion does inside a trained net (docs/probe.md).
//
// run_probe() finds the fusion-relevant places of a TEST net by layer type — BatchNorm with
// modalities, ChannelShuffle, PixelShift, MMTM, ModalityEnsemble, the modality inputs of data
// layers (Layer::modality_names) and the modality-stacked or per-stream blobs between them — and
// measures over K test batches:
//   - private BatchNorm: each modality's gamma, beta, running mean and variance per channel, and
//     the distance between two modalities' normalising Gaussians N(mean, var + eps);
//   - channel shuffle / pixel shift: the share of each receiving branch's activation energy that
//     comes from the other modality, per channel group;
//   - MMTM: each stream's gate per channel (mean, spread, per-class means, distance from 1);
//   - linear CKA between the modality branches at every stage;
//   - ModalityEnsemble: softmax(alpha), and its path over training from the metrics log;
//   - test-time ablations re-scored with the model's own metric (fusion layers off one at a
//     time, each modality zeroed / noised / swapped between samples, the ensemble replaced by
//     each branch);
//   - feature images of a few test samples before and after each fusion point.
// report.cpp writes it as probe.json, index.html and a terminal summary.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/net.h"
#include "core/png.h"
#include "probe/stats.h"

namespace mmfuse::probe {

struct ProbeOptions {
  int iterations = 8;         // test batches (ForwardContext::iteration 0..K-1)
  int image_samples = 2;      // feature images for the first samples of batch 0 (0: none)
  int image_channels = 8;     // channels per feature grid, evenly spread over C
  int64_t cka_rows = 1024;    // positions per batch and stage that CKA compares (strided subsample)
  bool ablations = true;
  uint64_t seed = 1;          // the noise of the "noise" ablation
  std::string metrics_log;    // the training's metrics log, for the ensemble's path ("": none)
};

// One modality pair (a, b) of a BatchNorm's channels.
struct BnPair {
  int a = 0, b = 1;
  std::vector<double> symmetric_kl, wasserstein_scaled;  // per channel
  double mean_symmetric_kl = 0, median_symmetric_kl = 0, mean_wasserstein_scaled = 0;
};
struct BnStats {
  std::string layer;
  int64_t channels = 0;
  // [modality][channel]; gamma/beta empty without affine; variance without eps.
  std::vector<std::vector<double>> gamma, beta, mean, variance;
  double eps = 0;
  std::vector<BnPair> pairs;
};

// ChannelShuffle and PixelShift: for each receiving modality, the energy (sum of squares over
// the K batches) of what it keeps and of what it receives from `source`, per channel group.
// ChannelShuffle's groups: "kept" [0, k) and "received" [k, C) (share = received energy / all
// energy of the top). PixelShift's: one group per shift direction (down, right, left, up) plus
// "unshifted" channels; top = own + received, share = |received|^2 / (|own|^2 + |received|^2).
struct ExchangeDirection {
  int receiver = 0, source = 1;
  std::vector<std::string> groups;
  std::vector<double> own, received;  // energy per group
  std::vector<int64_t> group_channels;
  double share() const;               // over all groups
  double share(size_t group) const;
};
struct ExchangeStats {
  std::string layer, type;  // "ChannelShuffle" / "PixelShift"
  int64_t channels = 0;
  double channel_share = 0;  // ChannelShuffle: (C - k) / C, the share if every channel had equal energy
  std::vector<ExchangeDirection> directions;
};

// MMTM: gate_scale * sigmoid(e) per stream, sample and channel, read off the layer as
// sum|top| / sum|bottom| per (sample, channel) (exact: the gate is constant over the
// trailing dims); channels whose bottom is all zero have no gate and are counted apart.
struct GateStream {
  std::string bottom, top;
  int64_t channels = 0;
  std::vector<Moments> per_channel;
  Moments all;
  double mean_abs_from_one = 0, max_abs_from_one = 0;
  int64_t undefined = 0;
  // Per class (classification labels only): mean gate per channel, and the sample count.
  std::vector<std::vector<double>> class_mean;
  std::vector<int64_t> class_count;
};
struct GateStats {
  std::string layer;
  double gate_scale = 2;
  std::vector<GateStream> streams;
};

// Linear CKA between two modalities' views of one stage, averaged over the K batches.
struct CkaStage {
  std::string blob;       // the stacked blob, or the first stream's
  std::string blob_b;     // the second stream's blob ("" for a stacked blob)
  std::string layer;      // the layer that wrote its final value
  int64_t layer_index = 0;
  int a = 0, b = 1;
  int64_t channels = 0, height = 1, width = 1;
  Moments cka;            // over batches
};

// Another model run on the same test batches (a single-modality baseline, say), compared stage
// by stage with this one's branches: CKA between modality m's slice (or stream) of a blob and
// the other model's blob of the same name (or "<modality>.<name>"). `a` is the modality, `b`
// unused. A first stage with CKA near 1 (the inputs) shows the two models saw the same samples.
struct Comparison {
  std::string model, weights;
  std::vector<CkaStage> stages;
};
struct Compared {
  std::string model, weights;
  Net* net = nullptr;  // its TEST net, weights loaded
};

struct EnsembleStats {
  std::string layer;
  std::vector<double> weights;  // softmax(alpha)
  std::vector<std::pair<int64_t, std::vector<double>>> path;  // (iteration, softmax(alpha)) from the log
};

// One re-scoring of the test set with something turned off or broken.
struct Ablation {
  std::string kind;    // "baseline", "fusion off", "modality zeroed", "modality noise", "modality swapped", "ensemble → branch"
  std::string target;  // the layer or modality
  std::vector<std::pair<std::string, double>> metrics;  // the model's own (mIoU per row, or accuracies)
};

struct FeatureImage {
  std::string title;  // "layer1.1.shuffle1 top, rgb, sample 0"
  std::string file;   // relative to the output folder
  Image image;
};

// A blob that is zero on every test batch: everything computed from it alone is constant (a
// dead ReLU cuts the layers before it off from the output).
struct DeadBlob {
  std::string blob, layer;  // the blob and the layer that wrote its final value
};

struct ProbeResult {
  std::string model, weights;
  int iterations = 0;
  std::vector<std::string> modalities;
  std::string metric_name;  // "mIoU" or "accuracy"
  std::vector<BnStats> batch_norms;
  std::vector<ExchangeStats> exchanges;
  std::vector<GateStats> gates;
  std::vector<CkaStage> cka;
  std::vector<Comparison> comparisons;
  std::vector<EnsembleStats> ensembles;
  std::vector<Ablation> ablations;
  std::vector<FeatureImage> images;
  std::vector<DeadBlob> dead;
};

// Measures `net` (a TEST net with trained weights loaded). Error when the net has no modality
// inputs or fusion layers to probe.
// `compared`: other models to run on the same batches and compare with (Comparison).
ProbeResult run_probe(Net& net, const ProbeOptions& options, const std::vector<Compared>& compared = {});

// Pieces of run_probe, for the tests.
std::vector<BnStats> batch_norm_stats(const Net& net);
std::vector<EnsembleStats> ensemble_stats(const Net& net, const std::string& metrics_log);
std::vector<Ablation> run_ablations(Net& net, const ProbeOptions& options);

// The model's own metric from one evaluation (names and values).
std::string metric_name_of(Net& net);

}  // namespace mmfuse::probe
