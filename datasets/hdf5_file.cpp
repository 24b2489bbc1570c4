#include "datasets/hdf5_file.h"

#include <mutex>

#ifdef MMFUSE_WITH_HDF5
#include <hdf5.h>
#endif

namespace mmfuse::datasets {
namespace {

#ifdef MMFUSE_WITH_HDF5
// libhdf5 as Debian builds it is not thread-safe: one call at a time.
std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}

// Closes an HDF5 handle on scope exit.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};
#else
[[noreturn]] void not_built(const std::string& path) {
  throw IOError(path + ": this mmfuse was built without HDF5 (install libhdf5-dev, e.g. with scripts/install-deps, "
                "and configure again)");
}
#endif

}  // namespace

bool hdf5_available() {
#ifdef MMFUSE_WITH_HDF5
  return true;
#else
  return false;
#endif
}

Hdf5Array read_hdf5_dataset(const std::string& path, const std::string& name) {
#ifdef MMFUSE_WITH_HDF5
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported here, not printed by the library
  MMF_CHECK(H5Fis_hdf5(path.c_str()) > 0, IOError, path, ": not an HDF5 file (or missing)");
  Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  MMF_CHECK(file.id >= 0, IOError, path, ": cannot open the HDF5 file");
  MMF_CHECK(H5Lexists(file.id, name.c_str(), H5P_DEFAULT) > 0, IOError, path, ": no dataset '", name,
            "' (HDF5Data reads one dataset per top, named like the top)");
  Handle set{H5Dopen2(file.id, name.c_str(), H5P_DEFAULT), H5Dclose};
  MMF_CHECK(set.id >= 0, IOError, path, ": '", name, "' is not a dataset");
  Handle type{H5Dget_type(set.id), H5Tclose};
  const H5T_class_t cls = H5Tget_class(type.id);
  MMF_CHECK(cls == H5T_FLOAT || cls == H5T_INTEGER, IOError, path, ": dataset '", name,
            "' does not hold numbers");
  Handle space{H5Dget_space(set.id), H5Sclose};
  const int rank = H5Sget_simple_extent_ndims(space.id);
  MMF_CHECK(rank >= 1, IOError, path, ": dataset '", name, "' has no dimensions");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  Hdf5Array out;
  for (hsize_t d : dims) out.shape.push_back(static_cast<int64_t>(d));
  out.values.resize(static_cast<size_t>(shape_numel(out.shape)));
  if (!out.values.empty())
    MMF_CHECK(H5Dread(set.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.values.data()) >= 0, IOError, path,
              ": cannot read dataset '", name, "'");
  return out;
#else
  (void)name;
  not_built(path);
#endif
}

void write_hdf5_file(const std::string& path, const std::vector<std::pair<std::string, Hdf5Array>>& datasets) {
#ifdef MMFUSE_WITH_HDF5
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  Handle file{H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
  MMF_CHECK(file.id >= 0, IOError, path, ": cannot create the HDF5 file");
  for (const auto& [name, array] : datasets) {
    std::vector<hsize_t> dims(array.shape.begin(), array.shape.end());
    MMF_CHECK(static_cast<int64_t>(array.values.size()) == shape_numel(array.shape), IOError, path, ": dataset '",
              name, "' has ", array.values.size(), " values for shape ", shape_str(array.shape));
    Handle space{H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose};
    Handle set{H5Dcreate2(file.id, name.c_str(), H5T_NATIVE_FLOAT, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               H5Dclose};
    MMF_CHECK(set.id >= 0, IOError, path, ": cannot create dataset '", name, "'");
    MMF_CHECK(H5Dwrite(set.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, array.values.data()) >= 0, IOError,
              path, ": cannot write dataset '", name, "'");
  }
#else
  (void)datasets;
  not_built(path);
#endif
}

}  // namespace mmfuse::datasets
