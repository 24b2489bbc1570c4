// Data (Caffe's): Datum records from an LMDB or a LevelDB (datasets/caffe_db.h), raw or encoded,
// through transform_param (datasets/caffe_transform.h). data_param { source, batch_size,
// backend (LEVELDB, Caffe's default, or LMDB), rand_skip, force_encoded_color, prefetch;
// mmfuse: threads, shuffle (false: the database's key order, as Caffe), seed }. Tops: data
// [N, C, H', W'] and, optionally, label int32 [N]. Batch b is a pure function of (seed, b,
// phase): record b*N + j (+ the rand_skip draw) of the key order (or of the epoch's permutation
// with shuffle). See docs/interop.md.
#include "datasets/caffe_db.h"
#include "layers/caffe_source.h"

namespace mmfuse {
namespace {

class DataLayer : public layers::CaffeSourceLayer {
 public:
  using CaffeSourceLayer::CaffeSourceLayer;
  ~DataLayer() override { stop(); }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext& ctx) override {
    const auto& p = layer_param().data_param();
    if (p.source().empty()) fail("data_param.source (the database folder) is required");
    read_transform(p);
    if (p.force_encoded_color()) transform_.color = datasets::ColorMode::kColor;
    try {
      db_ = datasets::open_record_db(p.source(), p.backend() == proto::DataParameter::LMDB
                                                     ? datasets::RecordBackend::kLmdb
                                                     : datasets::RecordBackend::kLevelDb);
    } catch (const Error& e) {
      fail(e.what());
    }
    return start({db_->size(), p.batch_size(), p.rand_skip(), p.threads(), p.prefetch(), p.shuffle(), p.has_seed(),
                  p.seed()},
                 ctx);
  }

 private:
  std::string sample_name(int64_t index) const override {
    if (index < 0) return describe();
    return db_->path() + ": record " + std::to_string(index) + " (key '" + std::string(db_->key(index)) + "')";
  }

  datasets::CaffeSample load(int64_t index) const override {
    caffe::Datum datum;
    MMF_CHECK(datum.ParseFromString(db_->value(index)), IOError, sample_name(index),
              ": not a serialized Datum (not a Caffe data database?)");
    return datasets::decode_datum(datum, transform_.color, sample_name(index));
  }

  std::shared_ptr<const datasets::RecordDb> db_;
};

}  // namespace
MMF_REGISTER_LAYER(Data, DataLayer)
}  // namespace mmfuse
