// HDF5 files as Caffe's HDF5Data layer reads them: named n-d datasets of numbers, read whole as
// float32 (any stored numeric type is converted by libhdf5). Compiled when libhdf5 was found at
// configure time (libhdf5-dev); otherwise the calls throw IOError saying so. docs/interop.md.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace mmfuse::datasets {

bool hdf5_available();

struct Hdf5Array {
  Shape shape;
  std::vector<float> values;
};

// Dataset `name` of the HDF5 file at `path`. IOError naming the path and the dataset when the
// file does not open or has no such dataset.
Hdf5Array read_hdf5_dataset(const std::string& path, const std::string& name);
// A new file at `path` holding each named array as a float32 dataset (tests, tools).
void write_hdf5_file(const std::string& path, const std::vector<std::pair<std::string, Hdf5Array>>& datasets);

}  // namespace mmfuse::datasets
