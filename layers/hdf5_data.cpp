// HDF5Data (Caffe's): hdf5_data_param { source (a text file listing .h5 files, one a line),
// batch_size, shuffle; mmfuse: seed }. Each top reads the dataset of its own name from every file
// (datasets/hdf5_file.h); the files' rows are concatenated in list order, all tops having the
// same number of rows. Tops: [N, dims after the first...], float (as Caffe: labels too; the
// losses take float labels). The files are read whole at setup. Batch b takes rows b*N + j of
// the row order (an epoch permutation with shuffle), a pure function of (seed, b).
#include <algorithm>
#include <fstream>
#include <memory>

#include "core/layer.h"
#include "datasets/data_layer.h"
#include "datasets/hdf5_file.h"

namespace mmfuse {
namespace {

class HDF5DataLayer : public Layer {
 public:
  using Layer::Layer;
  Arity arity() const override { return {0, 0, 1, -1}; }

  std::vector<Shape> setup(const std::vector<Shape>&, LayerContext& ctx) override {
    const auto& p = layer_param().hdf5_data_param();
    if (p.source().empty()) fail("hdf5_data_param.source (a text file listing .h5 files) is required");
    if (p.batch_size() == 0) fail("hdf5_data_param.batch_size must be positive");
    batch_ = p.batch_size();
    dtype_ = ctx.dtype;
    std::ifstream list(p.source());
    if (!list) fail("cannot open the file list '", p.source(), "'");
    std::vector<std::string> files;
    for (std::string line; std::getline(list, line);) {
      const auto first = line.find_first_not_of(" \t\r"), last = line.find_last_not_of(" \t\r");
      if (first != std::string::npos) files.push_back(line.substr(first, last - first + 1));
    }
    if (files.empty()) fail("the file list '", p.source(), "' names no HDF5 files");
    const int tops = layer_param().top_size();
    columns_.assign(static_cast<size_t>(tops), {});
    for (const std::string& file : files) {
      int64_t file_rows = -1;
      for (int t = 0; t < tops; ++t) {
        datasets::Hdf5Array a;
        try {
          a = datasets::read_hdf5_dataset(file, layer_param().top(t));
        } catch (const Error& e) {
          fail(p.source(), ": ", e.what());
        }
        Shape row(a.shape.begin() + 1, a.shape.end());
        auto& column = columns_[static_cast<size_t>(t)];
        if (column.values.empty() && column.shape.empty()) {
          column.shape = row;
        } else if (row != column.shape) {
          fail(file, ": dataset '", layer_param().top(t), "' has rows of shape ", shape_str(row),
               " but the files before have ", shape_str(column.shape));
        }
        if (file_rows >= 0 && a.shape[0] != file_rows)
          fail(file, ": dataset '", layer_param().top(t), "' has ", a.shape[0], " rows but '", layer_param().top(0),
               "' has ", file_rows, " (every top needs one row per sample)");
        file_rows = a.shape[0];
        column.values.insert(column.values.end(), a.values.begin(), a.values.end());
      }
      rows_ += file_rows;
    }
    if (rows_ == 0) fail("the HDF5 files of '", p.source(), "' hold no rows");
    const uint64_t seed = p.has_seed() ? p.seed() : ctx.gen.seed();
    order_ = std::make_unique<datasets::EpochOrder>(rows_, seed, p.shuffle());
    shard_ = datasets::batch_shard();
    std::vector<Shape> shapes;
    for (const auto& column : columns_) {
      Shape s{batch_};
      s.insert(s.end(), column.shape.begin(), column.shape.end());
      shapes.push_back(s);
    }
    return shapes;
  }

  TensorList forward(const TensorList&, ForwardContext& ctx) override {
    datasets::HostBatch batch(columns_.size());
    for (size_t t = 0; t < columns_.size(); ++t) {
      const auto& column = columns_[t];
      const size_t row = static_cast<size_t>(shape_numel(column.shape));
      batch[t].shape = {batch_};
      batch[t].shape.insert(batch[t].shape.end(), column.shape.begin(), column.shape.end());
      batch[t].values.resize(static_cast<size_t>(batch_) * row);
      for (int64_t j = 0; j < batch_; ++j) {
        const size_t r = static_cast<size_t>(order_->sample_at(shard_.position(ctx.iteration, batch_, j)));
        std::copy_n(column.values.begin() + static_cast<std::ptrdiff_t>(r * row), row,
                    batch[t].values.begin() + static_cast<std::ptrdiff_t>(j * row));
      }
    }
    return datasets::upload_batch(batch, ctx.device, dtype_);
  }

 private:
  struct Column {
    Shape shape;  // of one row
    std::vector<float> values;
  };
  std::vector<Column> columns_;
  int64_t rows_ = 0, batch_ = 1;
  datasets::BatchShard shard_;
  DType dtype_ = DType::f32;
  std::unique_ptr<datasets::EpochOrder> order_;
};

}  // namespace
MMF_REGISTER_LAYER(HDF5Data, HDF5DataLayer)
}  // namespace mmfuse
