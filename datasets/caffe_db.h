// Caffe's record databases: LMDB and LevelDB folders of (key, serialized Datum) pairs, as
// Caffe's convert_imageset writes them. Read-only, random access by record index in key order
// (the keys are listed once when the database is opened), safe to read from several threads.
// Each backend is compiled when its library was found at configure time (liblmdb-dev,
// libleveldb-dev); otherwise opening one throws IOError saying so. docs/interop.md.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mmfuse::datasets {

enum class RecordBackend { kLevelDb, kLmdb };
const char* backend_name(RecordBackend backend);
bool backend_available(RecordBackend backend);

class RecordDb {
 public:
  virtual ~RecordDb() = default;
  int64_t size() const { return static_cast<int64_t>(key_end_.size()); }
  std::string_view key(int64_t index) const {
    const size_t i = static_cast<size_t>(index), begin = i == 0 ? 0 : key_end_.at(i - 1);
    return std::string_view(key_bytes_).substr(begin, key_end_.at(i) - begin);
  }
  // The value of record `index` (0 <= index < size()). Thread-safe.
  virtual std::string value(int64_t index) const = 0;
  const std::string& path() const { return path_; }

 protected:
  void add_key(std::string_view key) {
    key_bytes_ += key;
    key_end_.push_back(key_bytes_.size());
  }
  std::string path_;

 private:
  // The keys in order, end to end (ImageNet's 1.3M keys take ~60 MB so, not twice that).
  std::string key_bytes_;
  std::vector<size_t> key_end_;
};

// Opens the database folder `path`. A database already open in this process (a train and a
// test net reading one source; LevelDB locks its folder) is shared. IOError naming the path and
// the library's reason when it cannot be opened, or when it holds no records.
std::shared_ptr<const RecordDb> open_record_db(const std::string& path, RecordBackend backend);

// Writes `records` into a new database at `path` (which must not exist): for tests and tools.
void write_record_db(const std::string& path, RecordBackend backend,
                     const std::vector<std::pair<std::string, std::string>>& records);

}  // namespace mmfuse::datasets
