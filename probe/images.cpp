#include "probe/images.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace mmfuse::probe {

namespace {

// viridis at five stops, linearly interpolated: perceptually ordered, readable in grey.
std::array<int, 3> colour(double t) {
  static const int stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 4;
  int i = std::min(3, static_cast<int>(t));
  double f = t - i;
  std::array<int, 3> c{};
  for (int k = 0; k < 3; ++k) c[k] = static_cast<int>(std::lround(stops[i][k] * (1 - f) + stops[i + 1][k] * f));
  return c;
}

// Integer enlargement so that the smaller side reaches `target` pixels.
int enlargement(int64_t h, int64_t w, int target) {
  int64_t side = std::max<int64_t>(1, std::min(h, w));
  return static_cast<int>(std::max<int64_t>(1, target / side));
}

struct Range {
  double lo = 0, hi = 0;
  void add(double v) {
    if (!std::isfinite(v)) return;
    if (!seen) lo = hi = v, seen = true;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  double scale(double v) const { return hi > lo ? (v - lo) / (hi - lo) : 0.5; }
  bool seen = false;
};

std::string file_part(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
  return s;
}

// The batch row of modality m, sample s in a tensor that is stacked ([M*N, ...]) or not.
int64_t row_of(const Tensor& x, int64_t m, int64_t s, int64_t M, bool stacked) {
  return stacked ? m * (x.shape()[0] / M) + s : s;
}

}  // namespace

Image feature_grid(const Tensor& x, int64_t n, int channels) {
  std::vector<double> v = x.to_vector<double>();
  const Shape& s = x.shape();
  int64_t C = s.size() > 1 ? s[1] : 1, H = s.size() > 2 ? s[2] : 1, W = s.size() > 3 ? s[3] : 1;
  int64_t shown = std::min<int64_t>(C, std::max(1, channels));
  int k = enlargement(H, W, 48), gap = 2;
  int tile_w = static_cast<int>(W) * k, tile_h = static_cast<int>(H) * k;
  Image img(static_cast<int>(shown) * (tile_w + gap) - gap, tile_h, 3);
  std::fill(img.pixels.begin(), img.pixels.end(), 255);
  for (int64_t j = 0; j < shown; ++j) {
    int64_t c = shown > 1 ? j * (C - 1) / (shown - 1) : 0;
    const double* map = v.data() + (n * C + c) * H * W;
    Range r;
    for (int64_t p = 0; p < H * W; ++p) r.add(map[p]);
    for (int y = 0; y < tile_h; ++y)
      for (int xx = 0; xx < tile_w; ++xx) {
        auto col = colour(r.scale(map[(y / k) * W + xx / k]));
        for (int q = 0; q < 3; ++q) img.at(y, static_cast<int>(j) * (tile_w + gap) + xx, q) = static_cast<uint16_t>(col[q]);
      }
  }
  return img;
}

Image picture(const Tensor& x, int64_t n) {
  std::vector<double> v = x.to_vector<double>();
  const Shape& s = x.shape();
  int64_t C = s.size() > 1 ? s[1] : 1, H = s.size() > 2 ? s[2] : 1, W = s.size() > 3 ? s[3] : 1;
  bool rgb = C == 3;
  int k = enlargement(H, W, 128);
  Range r;
  for (int64_t i = 0; i < (rgb ? 3 : 1) * H * W; ++i) r.add(v[n * C * H * W + i]);
  Image img(static_cast<int>(W) * k, static_cast<int>(H) * k, 3);
  for (int y = 0; y < img.height; ++y)
    for (int xx = 0; xx < img.width; ++xx) {
      int64_t p = (y / k) * W + xx / k;
      if (rgb) {
        for (int q = 0; q < 3; ++q)
          img.at(y, xx, q) = static_cast<uint16_t>(std::lround(255 * r.scale(v[(n * C + q) * H * W + p])));
      } else {
        auto col = colour(r.scale(v[n * C * H * W + p]));
        for (int q = 0; q < 3; ++q) img.at(y, xx, q) = static_cast<uint16_t>(col[q]);
      }
    }
  return img;
}

Image label_picture(const std::vector<double>& labels, int64_t H, int64_t W) {
  static const int palette[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
                                     {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  int k = enlargement(H, W, 128);
  Image img(static_cast<int>(W) * k, static_cast<int>(H) * k, 3);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      double c = labels[static_cast<size_t>((y / k) * W + x / k)];
      bool known = c >= 0 && c < 10;
      for (int q = 0; q < 3; ++q) img.at(y, x, q) = static_cast<uint16_t>(known ? palette[static_cast<int>(c)][q] : 0);
    }
  return img;
}

void add_input_images(const NetMap& map, const TensorList& tops, const ProbeOptions& options,
                      std::vector<FeatureImage>& images) {
  for (int64_t s = 0; s < options.image_samples; ++s)
    for (int64_t m = 0; m < map.modality_count(); ++m) {
      const Tensor& x = tops.at(map.stacked ? map.modality_tops[0] : map.modality_tops.at(static_cast<size_t>(m)));
      int64_t row = row_of(x, m, s, map.modality_count(), map.stacked);
      if (x.dim() != 4 || row >= x.shape()[0]) continue;
      images.push_back({"input " + map.modality(m) + ", sample " + std::to_string(s),
                        "images/input_" + file_part(map.modality(m)) + "_s" + std::to_string(s) + ".png", picture(x, row)});
    }
}

void add_fusion_images(const Net& net, const NetMap& map, size_t layer, const TensorList& tops,
                       const ProbeOptions& options, std::vector<FeatureImage>& images) {
  const std::string& name = net.layers()[layer]->name();
  bool streams = net.layers()[layer]->type() == "MMTM";  // one bottom and top per stream
  int64_t M = map.modality_count();
  for (int64_t s = 0; s < options.image_samples; ++s)
    for (int64_t m = 0; m < M; ++m) {
      size_t k = streams ? static_cast<size_t>(m) : 0;
      if (k >= tops.size()) continue;
      Tensor before = net.blob(net.bottom_names(layer).at(k)), after = tops[k];
      int64_t row = streams ? s : row_of(after, m, s, M, true);
      if (row >= after.shape()[0]) continue;
      std::string where = map.modality(m) + ", sample " + std::to_string(s);
      std::string file = file_part(name) + "_" + file_part(map.modality(m)) + "_s" + std::to_string(s);
      images.push_back({name + " before, " + where, "images/" + file + "_before.png",
                        feature_grid(before, row, options.image_channels)});
      images.push_back({name + " after, " + where, "images/" + file + "_after.png",
                        feature_grid(after, row, options.image_channels)});
    }
}

void add_prediction_images(const Net& net, const NetMap& map, const std::map<std::string, Tensor>& blobs,
                           const std::vector<double>& class_labels, const ProbeOptions& options,
                           std::vector<FeatureImage>& images) {
  if (!class_labels.empty() || map.label_top < 0) return;  // classification: no maps to draw
  const std::string& label_name = net.top_names(map.data_layer).at(static_cast<size_t>(map.label_top));
  auto label_it = blobs.find(label_name);
  if (label_it == blobs.end() || label_it->second.dim() != 3) return;
  const Tensor& label = label_it->second;
  int64_t N = label.shape()[0], H = label.shape()[1], W = label.shape()[2];
  std::vector<double> truth = label.to_vector<double>();
  for (int64_t s = 0; s < std::min<int64_t>(options.image_samples, N); ++s) {
    std::vector<double> gt(truth.begin() + s * H * W, truth.begin() + (s + 1) * H * W);
    images.push_back({"ground truth, sample " + std::to_string(s), "images/truth_s" + std::to_string(s) + ".png",
                      label_picture(gt, H, W)});
    for (size_t i = 0; i < net.layers().size(); ++i) {
      if (!net.layers()[i]->sums_metric_state()) continue;
      const std::string& logits_name = net.bottom_names(i).at(0);
      const Tensor& logits = blobs.at(logits_name);
      if (logits.dim() != 4 || logits.shape()[2] != H || logits.shape()[3] != W) continue;
      int64_t rows = logits.shape()[0] / N, K = logits.shape()[1];
      std::vector<double> v = logits.to_vector<double>();
      for (int64_t m = 0; m < rows; ++m) {
        std::vector<double> pred(static_cast<size_t>(H * W));
        int64_t base = (m * N + s) * K * H * W;
        for (int64_t p = 0; p < H * W; ++p) {
          int64_t best = 0;
          for (int64_t c = 1; c < K; ++c)
            if (v[base + c * H * W + p] > v[base + best * H * W + p]) best = c;
          pred[p] = static_cast<double>(best);
        }
        std::string which = logits_name, file = "images/pred_" + file_part(logits_name);
        if (rows > 1) {
          which.append(" (").append(map.modality(m)).append(")");
          file.append("_").append(file_part(map.modality(m)));
        }
        file += "_s" + std::to_string(s) + ".png";
        images.push_back({"prediction " + which + ", sample " + std::to_string(s), file, label_picture(pred, H, W)});
      }
    }
  }
}

}  // namespace mmfuse::probe
