// MultimodalImageData (mmfuse): samples of M aligned images (RGB, depth, ...) plus a label map or
// a class index, read from a list file (datasets/list_file.h), normalised per modality and
// augmented identically across modalities and label (datasets/augment.h). Tops: one stacked
// [M*N, C, H, W] (stacked: true) or one [N, C_m, H, W] per modality, then the label: int32
// [N, H, W] (segmentation) or [N] (classification). Batch b is a pure function of (seed, b,
// phase); see docs/datasets.md ("Data layers").
#include <filesystem>
#include <memory>

#include "core/layer.h"
#include "datasets/augment.h"
#include "datasets/data_layer.h"
#include "datasets/image.h"
#include "datasets/list_file.h"

namespace mmfuse {
namespace {

using datasets::HostBatch;
using datasets::HostBlob;

struct Modality {
  std::string name;
  int load_channels = 3, channels = 3;  // decoded / in the top (replicate)
  float scale = 1;
  std::vector<float> mean, std;  // one per top channel
  bool nearest = false;
  float pad_value = 0;
};

// One decoded, normalised, augmented sample.
struct Sample {
  std::vector<std::vector<float>> planes;  // per modality: C x H x W
  std::vector<float> label;                // segmentation: H x W (class indices as floats)
  int class_index = -1;
  int height = 0, width = 0;
};

class MultimodalImageDataLayer : public Layer {
 public:
  using Layer::Layer;
  ~MultimodalImageDataLayer() override { prefetcher_.reset(); }  // stop the workers first
  Arity arity() const override { return {0, 0, 2, -1}; }
  std::vector<std::string> modality_names() const override {
    std::vector<std::string> names;
    for (const auto& m : layer_param().multimodal_data_param().modality())
      names.push_back(m.name().empty() ? "modality " + std::to_string(names.size()) : m.name());
    return names;
  }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext& ctx) override {
    const auto& p = layer_param().multimodal_data_param();
    if (p.source().empty()) fail("multimodal_data_param.source (the list file) is required");
    if (p.modality_size() == 0) fail("multimodal_data_param needs at least one modality { }");
    if (p.batch_size() == 0) fail("batch_size must be positive");
    batch_ = p.batch_size();
    shard_ = datasets::batch_shard();
    stacked_ = p.stacked();
    segmentation_ = p.task() == proto::MultimodalDataParameter::SEGMENTATION;
    ignore_label_ = p.ignore_label();
    num_classes_ = p.num_classes();
    train_ = ctx.phase == proto::TRAIN;
    dtype_ = ctx.dtype;
    seed_ = p.has_seed() ? p.seed() : ctx.gen.seed();
    source_ = p.source();
    for (int m = 0; m < p.modality_size(); ++m) {
      const auto& mp = p.modality(m);
      Modality mod;
      mod.name = mp.name().empty() ? "modality " + std::to_string(m) : "'" + mp.name() + "'";
      if (mp.replicate() > 0) {
        mod.load_channels = 1;
        mod.channels = mp.replicate();
      } else {
        if (mp.channels() < 1 || mp.channels() > 4) fail(mod.name, ": channels must be 1..4, got ", mp.channels());
        mod.load_channels = mod.channels = mp.channels();
      }
      mod.scale = mp.scale();
      auto per_channel = [&](const auto& values, float fallback, const char* what) {
        if (values.size() != 0 && values.size() != 1 && values.size() != mod.channels)
          fail(mod.name, ": give 0, 1 or ", mod.channels, " ", what, " values, got ", values.size());
        std::vector<float> out(mod.channels, fallback);
        for (int c = 0; c < mod.channels && values.size() > 0; ++c) out[c] = values[values.size() == 1 ? 0 : c];
        return out;
      };
      mod.mean = per_channel(mp.mean(), 0.f, "mean");
      mod.std = per_channel(mp.std(), 1.f, "std");
      for (float s : mod.std)
        if (s == 0) fail(mod.name, ": std must be non-zero");
      mod.nearest = mp.interpolation() == proto::ModalityDataParameter::NEAREST;
      mod.pad_value = mp.pad_value();
      modalities_.push_back(mod);
    }
    const int M = static_cast<int>(modalities_.size());
    if (stacked_) {
      for (const auto& mod : modalities_)
        if (mod.channels != modalities_[0].channels)
          fail("stacked: true needs equal channel counts, but ", modalities_[0].name, " has ", modalities_[0].channels,
               " and ", mod.name, " has ", mod.channels, " (use replicate, or stacked: false)");
    }
    const int expected_tops = (stacked_ ? 1 : M) + 1;
    if (layer_param().top_size() != expected_tops)
      fail(stacked_ ? "stacked: true" : "stacked: false", " with ", M, " modalities takes ", expected_tops,
           " tops (", stacked_ ? "data" : "one per modality", ", then the label), got ", layer_param().top_size());

    const auto& a = p.augmentation();
    aug_.scale_min = a.scale_min();
    aug_.scale_max = a.scale_max();
    aug_.crop_height = a.crop_height();
    aug_.crop_width = a.crop_width() > 0 ? a.crop_width() : a.crop_height();
    aug_.mirror = a.mirror();
    aug_.pad_to_crop = a.pad_to_crop();
    aug_.min_short_side = a.min_short_side();
    if (aug_.scale_min <= 0 || aug_.scale_max < aug_.scale_min)
      fail("augmentation needs 0 < scale_min <= scale_max, got ", aug_.scale_min, " and ", aug_.scale_max);
    if (a.crop_height() < 0 || a.crop_width() < 0 || (a.crop_width() > 0 && a.crop_height() == 0))
      fail("augmentation: crop_height must be positive when crop_width is set (got ", a.crop_height(), " x ",
           a.crop_width(), ")");
    if (train_ && aug_.crop_height == 0 && aug_.scale_min != aug_.scale_max && batch_ > 1)
      fail("random scaling without a crop gives samples of different sizes: set crop_height/crop_width or batch_size: 1");

    // Without the list file, a crop still fixes the shapes: the net builds (`mmfuse check` on a
    // model whose dataset is not on this machine) and the missing file is reported by forward.
    if (aug_.crop_height > 0 && !std::filesystem::exists(source_)) {
      height_ = aug_.crop_height;
      width_ = aug_.crop_width;
    } else {
      open_list();
    }

    std::vector<Shape> shapes;
    const int64_t N = batch_;
    if (stacked_) {
      shapes.push_back({M * N, modalities_[0].channels, height_, width_});
    } else {
      for (const auto& mod : modalities_) shapes.push_back({N, mod.channels, height_, width_});
    }
    shapes.push_back(segmentation_ ? Shape{N, height_, width_} : Shape{N});
    return shapes;
  }

  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    if (!order_) open_list();
    return datasets::upload_batch(prefetcher_->get(ctx.iteration), ctx.device, dtype_);
  }

 private:
  // Reads and checks the list file, and takes the shapes from the first sample when no crop
  // fixes them.
  void open_list() {
    const auto& p = layer_param().multimodal_data_param();
    const int64_t M = static_cast<int64_t>(modalities_.size());
    try {
      entries_ = datasets::read_list_file(source_, M, p.root_folder());
    } catch (const Error& e) {
      fail(e.what());
    }
    if (entries_.empty()) fail("the list file '", source_, "' has no samples");
    for (const auto& e : entries_) {
      if (segmentation_ && e.label_path.empty())
        fail(where(e), ": task SEGMENTATION needs a label image path, got the class index ", e.class_index);
      if (!segmentation_ && e.class_index < 0)
        fail(where(e), ": task CLASSIFICATION needs a class index, got the path '", e.label_path, "'");
      if (!segmentation_ && num_classes_ > 0 && e.class_index >= num_classes_ && e.class_index != ignore_label_)
        fail(where(e), ": class index ", e.class_index, " is out of range (num_classes: ", num_classes_, ")");
    }
    check_bit_depths();
    order_ = std::make_unique<datasets::EpochOrder>(static_cast<int64_t>(entries_.size()), seed_,
                                                    train_ && p.shuffle());

    // The first sample gives the shapes (its TEST-phase size, or the crop).
    Sample first = load(entries_[order_->sample_at(0)], nullptr);
    height_ = first.height;
    width_ = first.width;
    if (aug_.crop_height == 0) vary_ok_ = batch_ == 1;  // a batch of one may take any size
    prefetcher_ = std::make_unique<datasets::BatchPrefetcher>([this](int64_t b) { return make_batch(b); },
                                                              static_cast<int>(p.threads()),
                                                              static_cast<int>(p.prefetch()));
  }

  // A modality's images share one depth: an 8-bit depth map among 16-bit ones (millimetres)
  // would be scaled wrongly without a word. Headers only (after the reader's safety checks);
  // unreadable files are left to load().
  void check_bit_depths() const {
    for (size_t m = 0; m < modalities_.size(); ++m) {
      const datasets::ListEntry* first = nullptr;
      int first_bits = 0;
      for (const auto& e : entries_) {
        const std::string& path = e.paths[m];
        int bits = 0;
        try {
          bits = datasets::read_image_info(path).bits;
        } catch (const Error&) {
          continue;
        }
        if (!first) {
          first = &e;
          first_bits = bits;
        } else if (bits != first_bits) {
          fail(where(e), ": '", path, "' is a ", bits, "-bit image but '", first->paths[m], "' (line ", first->line,
               ") is ", first_bits, "-bit: the images of modality ", m,
               " must share one bit depth (8-bit values would be read on the 16-bit scale, or back)");
        }
      }
    }
  }

  // "list.txt:12" (fail() and the net's forward add the layer).
  std::string where(const datasets::ListEntry& e) const { return source_ + ":" + std::to_string(e.line); }

  // Decodes, normalises and augments one sample (thread-safe: reads only const state).
  Sample load(const datasets::ListEntry& e, Generator* gen) const {
    std::vector<datasets::Image> images;
    datasets::Image label;
    try {
      for (size_t m = 0; m < modalities_.size(); ++m)
        images.push_back(datasets::load_image(e.paths[m], modalities_[m].load_channels));
      if (segmentation_) label = datasets::load_label(e.label_path);
    } catch (const Error& err) {
      throw IOError(where(e) + ": " + err.what());
    }
    const int h = images[0].height, w = images[0].width;
    for (size_t m = 0; m < images.size(); ++m)
      if (images[m].height != h || images[m].width != w)
        throw IOError(where(e) + ": modalities of different sizes in one sample: '" + e.paths[0] + "' is " +
                      std::to_string(w) + "x" + std::to_string(h) + ", '" + e.paths[m] + "' is " +
                      std::to_string(images[m].width) + "x" + std::to_string(images[m].height) + " (width x height)");
    if (segmentation_ && (label.height != h || label.width != w))
      throw IOError(where(e) + ": the label '" + e.label_path + "' is " + std::to_string(label.width) + "x" +
                    std::to_string(label.height) + " but '" + e.paths[0] + "' is " + std::to_string(w) + "x" +
                    std::to_string(h) + " (width x height)");

    const datasets::AugmentPlan plan = datasets::plan_augmentation(aug_, h, w, gen);
    Sample s;
    s.height = plan.out_h;
    s.width = plan.out_w;
    s.class_index = e.class_index;
    const size_t plane = static_cast<size_t>(h) * w;
    for (size_t m = 0; m < modalities_.size(); ++m) {
      const Modality& mod = modalities_[m];
      const datasets::Image& img = images[m];
      std::vector<float> chw(plane * mod.channels);
      for (int c = 0; c < mod.channels; ++c) {
        const int src_c = mod.load_channels == 1 ? 0 : c;
        const float mean = mod.mean[c], inv_std = 1.f / mod.std[c];
        for (size_t i = 0; i < plane; ++i)
          chw[c * plane + i] = (img.pixels[i * img.channels + src_c] * mod.scale - mean) * inv_std;
      }
      s.planes.emplace_back(static_cast<size_t>(plan.out_h) * plan.out_w * mod.channels);
      datasets::apply_plan(plan, chw.data(), mod.channels, mod.nearest, mod.pad_value, s.planes.back().data());
    }
    if (segmentation_) {
      std::vector<float> values(plane);
      for (size_t i = 0; i < plane; ++i) {
        const int v = label.pixels[i];
        if (num_classes_ > 0 && v >= num_classes_ && v != ignore_label_)
          throw IOError(where(e) + ": label value " + std::to_string(v) + " at (x " + std::to_string(i % w) +
                        ", y " + std::to_string(i / w) + ") of '" + e.label_path + "' is out of range (num_classes: " +
                        std::to_string(num_classes_) + ", ignore_label: " + std::to_string(ignore_label_) + ")");
        values[i] = static_cast<float>(v);
      }
      s.label.resize(static_cast<size_t>(plan.out_h) * plan.out_w);
      datasets::apply_plan(plan, values.data(), 1, true, static_cast<float>(ignore_label_), s.label.data());
    }
    return s;
  }

  HostBatch make_batch(int64_t b) const {
    const int64_t N = batch_, M = static_cast<int64_t>(modalities_.size());
    std::vector<Sample> samples;
    for (int64_t j = 0; j < N; ++j) {
      const auto& e = entries_[order_->sample_at(shard_.position(b, N, j))];
      Generator gen = datasets::sample_generator(seed_, b, shard_.global_index(N, j));
      samples.push_back(load(e, train_ ? &gen : nullptr));
      const Sample& s = samples.back();
      if (!vary_ok_ && (s.height != height_ || s.width != width_))
        throw IOError(where(e) + ": '" + e.paths[0] + "' gives a " + std::to_string(s.width) + "x" +
                      std::to_string(s.height) + " sample but the batch is " + std::to_string(width_) + "x" +
                      std::to_string(height_) + " (width x height); images of varying sizes need " +
                      "augmentation { crop_height crop_width } or batch_size: 1");
    }
    const int64_t H = samples[0].height, W = samples[0].width;
    HostBatch batch;
    auto fill_modality = [&](int64_t m, float* dst) {
      const size_t n = samples[0].planes[m].size();
      for (int64_t j = 0; j < N; ++j) std::copy(samples[j].planes[m].begin(), samples[j].planes[m].end(), dst + j * n);
    };
    if (stacked_) {
      HostBlob data;
      const int64_t C = modalities_[0].channels;
      data.shape = {M * N, C, H, W};
      data.values.resize(static_cast<size_t>(M * N * C * H * W));
      for (int64_t m = 0; m < M; ++m) fill_modality(m, data.values.data() + m * N * C * H * W);
      batch.push_back(std::move(data));
    } else {
      for (int64_t m = 0; m < M; ++m) {
        HostBlob data;
        const int64_t C = modalities_[m].channels;
        data.shape = {N, C, H, W};
        data.values.resize(static_cast<size_t>(N * C * H * W));
        fill_modality(m, data.values.data());
        batch.push_back(std::move(data));
      }
    }
    HostBlob label;
    label.is_int = true;
    if (segmentation_) {
      label.shape = {N, H, W};
      for (const auto& s : samples)
        for (float v : s.label) label.ints.push_back(static_cast<int32_t>(v));
    } else {
      label.shape = {N};
      for (const auto& s : samples) label.ints.push_back(s.class_index);
    }
    batch.push_back(std::move(label));
    return batch;
  }

  std::vector<Modality> modalities_;
  std::vector<datasets::ListEntry> entries_;
  datasets::AugmentSettings aug_;
  std::unique_ptr<datasets::EpochOrder> order_;
  std::string source_;
  int64_t batch_ = 1, height_ = 0, width_ = 0;
  datasets::BatchShard shard_;
  bool stacked_ = true, segmentation_ = true, train_ = true, vary_ok_ = false;
  int ignore_label_ = 255, num_classes_ = 0;
  uint64_t seed_ = 0;
  DType dtype_ = DType::f32;
  std::unique_ptr<datasets::BatchPrefetcher> prefetcher_;  // last: destroyed first
};

}  // namespace
MMF_REGISTER_LAYER(MultimodalImageData, MultimodalImageDataLayer)
}  // namespace mmfuse
