// Data (Caffe's): Datum records from an LMDB or a LevelDB (datasets/caffe_db.h), raw or encoded,
// through transform_param (datasets/caffe_transform.h). data_param { source, batch_size,
// backend (LEVELDB, Caffe's default, or LMDB), rand_skip, force_encoded_color, prefetch;
// mmfuse: threads, shuffle (false: the database's key order, as Caffe), seed }. Tops: data
// [N, C, H', W'] and, optionally, label int32 [N]. Batch b is a pure function of (seed, b,
// phase): record b*N + j (+ the rand_skip draw) of the key order (or of the epoch's permutation
// with shuffle). See docs/interop.md.
#include <memory>

#include "core/layer.h"
#include "datasets/caffe_db.h"
#include "datasets/caffe_transform.h"

namespace mmfuse {
namespace {

class DataLayer : public Layer {
 public:
  using Layer::Layer;
  ~DataLayer() override { prefetcher_.reset(); }
  Arity arity() const override { return {0, 0, 1, 2}; }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext& ctx) override {
    const auto& p = layer_param().data_param();
    if (p.source().empty()) fail("data_param.source (the database folder) is required");
    if (p.batch_size() == 0) fail("data_param.batch_size must be positive");
    batch_ = p.batch_size();
    train_ = ctx.phase == proto::TRAIN;
    dtype_ = ctx.dtype;
    seed_ = p.has_seed() ? p.seed() : ctx.gen.seed();
    const auto backend = p.backend() == proto::DataParameter::LMDB ? datasets::RecordBackend::kLmdb
                                                                   : datasets::RecordBackend::kLevelDb;
    try {
      transform_ = datasets::CaffeTransform::from_param(
          datasets::with_legacy_transform(layer_param().transform_param(), p, describe()), describe());
      if (p.force_encoded_color()) transform_.color = datasets::ColorMode::kColor;
      db_ = datasets::open_record_db(p.source(), backend);
      first_ = load(0);
      shape_ = transform_.sample_shape(first_.channels, first_.height, first_.width, describe());
    } catch (const ParseError&) {
      throw;
    } catch (const Error& e) {
      fail(e.what());
    }
    // Caffe's rand_skip: the first batch starts at a record drawn in [0, rand_skip].
    if (p.rand_skip() > 0)
      skip_ = static_cast<int64_t>(Generator(datasets::mix_seed(seed_, 0x5d1b)).below(p.rand_skip() + 1));
    order_ = std::make_unique<datasets::EpochOrder>(db_->size(), seed_, p.shuffle());
    prefetcher_ = std::make_unique<datasets::BatchPrefetcher>([this](int64_t b) { return make_batch(b); },
                                                              static_cast<int>(p.threads()),
                                                              static_cast<int>(p.prefetch()));
    std::vector<Shape> shapes{{batch_, shape_[0], shape_[1], shape_[2]}};
    if (layer_param().top_size() == 2) shapes.push_back({batch_});
    return shapes;
  }

  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    datasets::HostBatch batch = prefetcher_->get(ctx.iteration);
    batch.resize(static_cast<size_t>(layer_param().top_size()));
    return datasets::upload_batch(batch, ctx.device, dtype_);
  }

 private:
  std::string record_name(int64_t index) const {
    if (index < 0) return describe();
    return db_->path() + ": record " + std::to_string(index) + " (key '" + std::string(db_->key(index)) + "')";
  }

  datasets::CaffeSample load(int64_t index) const {
    caffe::Datum datum;
    MMF_CHECK(datum.ParseFromString(db_->value(index)), IOError, record_name(index),
              ": not a serialized Datum (not a Caffe data database?)");
    return datasets::decode_datum(datum, transform_.color, record_name(index));
  }

  datasets::HostBatch make_batch(int64_t b) const {
    return datasets::make_caffe_batch(
        b, batch_, skip_, *order_, seed_, train_, transform_, first_, [this](int64_t i) { return load(i); },
        [this](int64_t i) { return record_name(i); });
  }

  int64_t batch_ = 1, skip_ = 0;
  bool train_ = true;
  uint64_t seed_ = 0;
  DType dtype_ = DType::f32;
  datasets::CaffeTransform transform_;
  datasets::CaffeSample first_;
  Shape shape_;
  std::shared_ptr<const datasets::RecordDb> db_;
  std::unique_ptr<datasets::EpochOrder> order_;
  std::unique_ptr<datasets::BatchPrefetcher> prefetcher_;  // last: destroyed first
};

}  // namespace
MMF_REGISTER_LAYER(Data, DataLayer)
}  // namespace mmfuse
