#include "datasets/caffe_transform.h"

#include "core/caffemodel.h"
#include "datasets/image.h"

namespace mmfuse::datasets {

CaffeSample decode_caffe_image(const std::vector<uint8_t>& bytes, ColorMode mode, const std::string& name) {
  int channels = mode == ColorMode::kColor ? 3 : mode == ColorMode::kGray ? 1 : 0;
  if (channels == 0) channels = image_info(bytes, name).channels >= 3 ? 3 : 1;
  const Image image = decode_image(bytes, name, channels);
  CaffeSample s;
  s.channels = channels;
  s.height = image.height;
  s.width = image.width;
  s.values.resize(static_cast<size_t>(channels) * image.height * image.width);
  const size_t plane = static_cast<size_t>(image.height) * image.width;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x)
      for (int c = 0; c < channels; ++c) {
        // OpenCV's order: B, G, R.
        const int out_c = channels == 3 ? 2 - c : c;
        s.values[out_c * plane + static_cast<size_t>(y) * image.width + x] = image.at(y, x, c);
      }
  return s;
}

CaffeSample decode_datum(const caffe::Datum& datum, ColorMode mode, const std::string& name) {
  CaffeSample s;
  if (datum.encoded()) {
    const std::string& d = datum.data();
    s = decode_caffe_image(std::vector<uint8_t>(d.begin(), d.end()), mode, name);
    s.label = datum.label();
    return s;
  }
  s.channels = datum.channels();
  s.height = datum.height();
  s.width = datum.width();
  s.label = datum.label();
  MMF_CHECK(s.channels > 0 && s.height > 0 && s.width > 0, IOError, name, ": a Datum of size ", s.channels, " x ",
            s.height, " x ", s.width, " (channels x height x width must be positive)");
  // Each factor < 2^31: the product of two fits, and the third is checked against the bytes.
  const int64_t plane = int64_t{s.height} * s.width;
  MMF_CHECK(plane <= (int64_t{1} << 40) / s.channels, IOError, name, ": a Datum of size ", s.channels, " x ",
            s.height, " x ", s.width, " is too large");
  const int64_t n = plane * s.channels;
  if (!datum.data().empty()) {
    MMF_CHECK(static_cast<int64_t>(datum.data().size()) == n, IOError, name, ": ", datum.data().size(),
              " bytes of data for ", s.channels, " x ", s.height, " x ", s.width);
    s.values.resize(static_cast<size_t>(n));
    for (size_t i = 0; i < s.values.size(); ++i) s.values[i] = static_cast<uint8_t>(datum.data()[i]);
  } else {
    MMF_CHECK(datum.float_data_size() == n, IOError, name, ": ", datum.float_data_size(), " float_data values for ",
              s.channels, " x ", s.height, " x ", s.width);
    s.values.assign(datum.float_data().begin(), datum.float_data().end());
  }
  return s;
}

CaffeTransform CaffeTransform::from_param(const proto::TransformationParameter& p, const std::string& who) {
  CaffeTransform t;
  t.scale = p.scale();
  t.mirror = p.mirror();
  t.crop_size = static_cast<int>(p.crop_size());
  MMF_CHECK(!(p.force_color() && p.force_gray()), ParseError, who, ": force_color and force_gray exclude each other");
  t.color = p.force_color() ? ColorMode::kColor : p.force_gray() ? ColorMode::kGray : ColorMode::kNative;
  MMF_CHECK(!(p.has_mean_file() && p.mean_value_size() > 0), ParseError, who,
            ": give mean_file or mean_value, not both (Caffe's rule)");
  t.mean_values.assign(p.mean_value().begin(), p.mean_value().end());
  if (p.has_mean_file()) {
    Tensor mean;
    try {
      mean = read_caffe_blob(p.mean_file());
    } catch (const Error& e) {
      throw ParseError(who + ": transform_param.mean_file: " + e.what());
    }
    // A mean file is [1, C, H, W] (Caffe's compute_image_mean) or [C, H, W].
    Shape s = mean.shape();
    while (s.size() > 3 && s.front() == 1) s.erase(s.begin());
    MMF_CHECK(s.size() == 3, ParseError, who, ": mean_file '", p.mean_file(), "' has shape ",
              shape_str(mean.shape()), ", expected [1, C, H, W]");
    t.mean_channels = static_cast<int>(s[0]);
    t.mean_height = static_cast<int>(s[1]);
    t.mean_width = static_cast<int>(s[2]);
    t.mean_image = mean.to(DType::f32).to_vector<float>();
  }
  return t;
}

Shape CaffeTransform::sample_shape(int channels, int height, int width, const std::string& who) const {
  if (!mean_values.empty())
    MMF_CHECK(mean_values.size() == 1 || static_cast<int>(mean_values.size()) == channels, Error, who, ": ",
              mean_values.size(), " mean_value entries for ", channels, " channels (give 1 or ", channels, ")");
  if (!mean_image.empty())
    MMF_CHECK(mean_channels == channels && mean_height == height && mean_width == width, Error, who,
              ": the mean_file is ", mean_channels, " x ", mean_height, " x ", mean_width, " but the data is ",
              channels, " x ", height, " x ", width, " (Caffe subtracts the mean before cropping)");
  if (crop_size > 0)
    MMF_CHECK(crop_size <= height && crop_size <= width, Error, who, ": crop_size ", crop_size,
              " is larger than the data (", height, " x ", width, ")");
  return crop_size > 0 ? Shape{channels, crop_size, crop_size} : Shape{channels, height, width};
}

void CaffeTransform::apply(const CaffeSample& s, Generator* gen, float* dst) const {
  const bool flip = gen && mirror && gen->below(2) == 1;
  int out_h = s.height, out_w = s.width, off_y = 0, off_x = 0;
  if (crop_size > 0) {
    out_h = out_w = crop_size;
    if (gen) {
      off_y = static_cast<int>(gen->below(static_cast<uint64_t>(s.height - crop_size + 1)));
      off_x = static_cast<int>(gen->below(static_cast<uint64_t>(s.width - crop_size + 1)));
    } else {
      off_y = (s.height - crop_size) / 2;
      off_x = (s.width - crop_size) / 2;
    }
  }
  for (int c = 0; c < s.channels; ++c) {
    const float mean_c = mean_values.empty() ? 0.f : mean_values[mean_values.size() == 1 ? 0 : c];
    for (int y = 0; y < out_h; ++y)
      for (int x = 0; x < out_w; ++x) {
        const size_t src = (static_cast<size_t>(c) * s.height + off_y + y) * s.width + off_x + x;
        const float mean = mean_image.empty() ? mean_c : mean_image[src];
        const int out_x = flip ? out_w - 1 - x : x;
        dst[(static_cast<size_t>(c) * out_h + y) * out_w + out_x] = (s.values[src] - mean) * scale;
      }
  }
}

HostBatch make_caffe_batch(int64_t b, int64_t batch_size, const BatchShard& shard, int64_t skip, const EpochOrder& order, uint64_t seed,
                           bool train, const CaffeTransform& transform, const CaffeSample& first,
                           const std::function<CaffeSample(int64_t index)>& load,
                           const std::function<std::string(int64_t index)>& name) {
  const Shape shape = transform.sample_shape(first.channels, first.height, first.width, name(-1));
  const int64_t per_sample = shape_numel(shape);
  HostBatch batch(2);
  batch[0].shape = {batch_size, shape[0], shape[1], shape[2]};
  batch[0].values.resize(static_cast<size_t>(batch_size * per_sample));
  batch[1].shape = {batch_size};
  batch[1].is_int = true;
  for (int64_t j = 0; j < batch_size; ++j) {
    const int64_t index = order.sample_at(shard.position(b, batch_size, j) + skip);
    const CaffeSample s = load(index);
    MMF_CHECK(s.channels == first.channels && s.height == first.height && s.width == first.width, IOError,
              name(index), ": ", s.channels, " x ", s.height, " x ", s.width, " where the first record is ",
              first.channels, " x ", first.height, " x ", first.width,
              " (a batch needs one size: resize when converting, or crop_size)");
    Generator gen = sample_generator(seed, b, shard.global_index(batch_size, j));
    transform.apply(s, train ? &gen : nullptr, batch[0].values.data() + j * per_sample);
    batch[1].ints.push_back(s.label);
  }
  return batch;
}

}  // namespace mmfuse::datasets
