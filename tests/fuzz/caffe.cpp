// Fuzzes the readers of Caffe's binary files (core/caffemodel.h, datasets/caffe_transform.h):
// the bytes as a .caffemodel, mapped by layer name onto snapshot_net.prototxt's net (TEST
// phase; BatchNorm's sums divided by its scale factor) and copied in, strictly and by name,
// then one forward and backward pass; and as a Datum record of an LMDB/LevelDB (raw, float or
// encoded), decoded natively, as colour and as gray, then put through Caffe's transform (mean
// value, scale, crop 2, mirror) in TRAIN and in TEST. Datums that declare more than 2^18 values
// are only decoded (the transform's cost grows with them, not its code paths), and encoded
// images declaring more than 2^22 samples are left out, as in the image fuzzer. Seeds: V1 and V2
// caffemodels of that net, raw, float and PNG-encoded Datums (docs/reliability.md).
#include <filesystem>

#include <google/protobuf/stubs/logging.h>

#include "core/caffemodel.h"
#include "core/net.h"
#include "core/prototxt.h"
#include "core/snapshot.h"
#include "datasets/caffe_transform.h"
#include "datasets/image.h"
#include "tests/fuzz/fuzz.h"

namespace {

using namespace mmfuse;

void forward_backward(Net& net) {
  Generator gen(7);
  std::map<std::string, Tensor> inputs;
  for (const auto& [name, shape] : net.inputs())
    inputs[name] = name == "label" ? Tensor::zeros(shape, DType::i32) : Tensor::randn(shape, gen);
  net.forward(inputs);
  net.loss().backward();
  for (const Param& p : net.learnable_params()) p.value.set_grad(Tensor());
}

datasets::CaffeTransform transform() {
  proto::TransformationParameter p;
  p.set_scale(0.5f);
  p.set_crop_size(2);
  p.set_mirror(true);
  p.add_mean_value(3);
  return datasets::CaffeTransform::from_param(p, "fuzz");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = fuzz::text_of(data, size);
  // One net for every input (building it would dominate the run); what an input loads is
  // overwritten by the next one's or kept, either way a valid state.
  static Net net(fuzz::snapshot_net_param(), proto::TEST, Device::cpu(), 1);
  proto::NetWeights weights;
  std::string summary;
  auto read = [&] { weights = caffemodel_weights_from_bytes(net, bytes, "fuzz.caffemodel", &summary); };
  if (fuzz::expect_ok_or_error(read)) {
    fuzz::expect_ok_or_error([&] { copy_weights(net, weights, /*strict=*/true); });
    if (fuzz::expect_ok_or_error([&] { (void)copy_weights(net, weights).table(); })) forward_backward(net);
  }
  caffe::Datum datum;
  if (datum.ParseFromString(bytes)) {
    // As the image fuzzer: an image declaring more than 2^22 samples is left out (a few bytes
    // may legitimately expand to hundreds of megabytes).
    if (datum.encoded()) {
      datasets::ImageInfo info;
      const std::vector<uint8_t> file(datum.data().begin(), datum.data().end());
      if (!fuzz::expect_ok_or_error([&] { info = datasets::image_info(file, "fuzz record"); })) return 0;
      if (int64_t{info.width} * info.height * 4 > (int64_t{1} << 22)) return 0;
    }
    static const datasets::CaffeTransform kTransform = transform();
    for (auto mode : {datasets::ColorMode::kNative, datasets::ColorMode::kColor, datasets::ColorMode::kGray}) {
      fuzz::expect_ok_or_error([&] {
        datasets::CaffeSample s = datasets::decode_datum(datum, mode, "fuzz record");
        if (s.values.size() > (size_t{1} << 18)) return;
        const Shape shape = kTransform.sample_shape(s.channels, s.height, s.width, "fuzz");
        std::vector<float> out(static_cast<size_t>(shape_numel(shape)));
        Generator gen(1);
        kTransform.apply(s, &gen, out.data());
        kTransform.apply(s, nullptr, out.data());
      });
    }
  }
  return 0;
}
