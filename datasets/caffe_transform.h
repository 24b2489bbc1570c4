// Caffe's samples and its DataTransformer: Datum records and image files decoded into C x H x W
// floats (channel order BGR, as Caffe's OpenCV gives), and transform_param applied in Caffe's
// order: subtract the mean (mean_file at the source pixel, or mean_value per channel), multiply
// by scale, crop (random offset in TRAIN, centred in TEST) and mirror. Used by the Data and
// ImageData layers; docs/interop.md ("Caffe's data").
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/prototxt.h"
#include "core/proto/caffe.pb.h"
#include "core/random.h"
#include "datasets/data_layer.h"

namespace mmfuse::datasets {

// One sample before the transform: C x H x W values as stored (0..255 for uint8 data).
struct CaffeSample {
  int channels = 0, height = 0, width = 0;
  std::vector<float> values;
  int label = 0;
};

// How an image becomes channels: Caffe's native decode keeps gray as 1 channel and colour as
// 3 (alpha dropped); color forces 3, gray 1.
enum class ColorMode { kNative, kColor, kGray };

// A Datum's sample: raw uint8 `data`, `float_data`, or an encoded image file in `data`.
// IOError naming `name` for a value count that does not match channels x height x width or an
// image that does not decode.
CaffeSample decode_datum(const caffe::Datum& datum, ColorMode mode, const std::string& name);
// An image file's bytes as a sample (label 0).
CaffeSample decode_caffe_image(const std::vector<uint8_t>& bytes, ColorMode mode, const std::string& name);

struct CaffeTransform {
  float scale = 1;
  bool mirror = false;
  int crop_size = 0;
  std::vector<float> mean_image;  // mean_file: C x H x W, the source's size
  int mean_channels = 0, mean_height = 0, mean_width = 0;
  std::vector<float> mean_values;  // one per channel, or one for all
  ColorMode color = ColorMode::kNative;

  // From transform_param; reads mean_file (Caffe's .binaryproto). Error messages start with
  // `who` (the layer). Refuses mean_file together with mean_value, as Caffe does.
  static CaffeTransform from_param(const proto::TransformationParameter& param, const std::string& who);
  // The shape of a transformed sample of `channels` x `height` x `width`; checks the crop and
  // the mean against it (Error starting with `who`).
  Shape sample_shape(int channels, int height, int width, const std::string& who) const;
  // Caffe's DataTransformer::Transform: writes sample_shape() values to `dst`. TRAIN (`gen`
  // non-null) draws the mirror flip (when mirror), then the crop offsets y and x (when
  // crop_size), each from `gen`; TEST centres the crop and never mirrors.
  void apply(const CaffeSample& sample, Generator* gen, float* dst) const;
};

// transform_param with the older files' data_param / image_data_param fields (scale, mean_file,
// crop_size, mirror) moved in, as Caffe's UpgradeNetDataTransformation does; a field given in
// both places is refused (ParseError starting with `who`).
template <typename SourceParam>
proto::TransformationParameter with_legacy_transform(proto::TransformationParameter t, const SourceParam& p,
                                                     const std::string& who) {
  auto move = [&](bool in_source, bool in_transform, const char* field, auto set) {
    if (!in_source) return;
    if (in_transform)
      throw ParseError(who + ": " + field + " is given in transform_param and in the data parameters (older "
                       "Caffe files' place for it): keep one");
    set();
  };
  move(p.has_scale(), t.has_scale(), "scale", [&] { t.set_scale(p.scale()); });
  move(p.has_mean_file(), t.has_mean_file(), "mean_file", [&] { t.set_mean_file(p.mean_file()); });
  move(p.has_crop_size(), t.has_crop_size(), "crop_size", [&] { t.set_crop_size(p.crop_size()); });
  move(p.has_mirror(), t.has_mirror(), "mirror", [&] { t.set_mirror(p.mirror()); });
  return t;
}

// Batch b of a source of `count` samples, Caffe-style: data [N, C, H', W'] (transformed) and
// label int32 [N], this process's shard of the global batch (`shard`: rank 0 of 1 in one
// process). Position p = shard.position(b, N, j) + skip of the epoch order gives the sample;
// sample j draws its transform from sample_generator(seed, b, shard.global_index(N, j)) in
// TRAIN. Every sample must have the shape of the first (`first`), else IOError naming it.
HostBatch make_caffe_batch(int64_t b, int64_t batch_size, const BatchShard& shard, int64_t skip, const EpochOrder& order, uint64_t seed,
                           bool train, const CaffeTransform& transform, const CaffeSample& first,
                           const std::function<CaffeSample(int64_t index)>& load,
                           const std::function<std::string(int64_t index)>& name);

}  // namespace mmfuse::datasets
