#include "datasets/caffe_db.h"

#include <filesystem>
#include <map>
#include <mutex>

#include "base/error.h"

#ifdef MMFUSE_WITH_LMDB
#include <lmdb.h>
#endif
#ifdef MMFUSE_WITH_LEVELDB
#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#endif

namespace mmfuse::datasets {
namespace {

[[noreturn]] void not_built(const std::string& path, RecordBackend backend) {
  throw IOError(path + ": this mmfuse was built without " + backend_name(backend) + " (install " +
                (backend == RecordBackend::kLmdb ? "liblmdb-dev" : "libleveldb-dev") +
                ", e.g. with scripts/install-deps, and configure again)");
}

#ifdef MMFUSE_WITH_LMDB
void lmdb_check(int rc, const std::string& path, const char* what) {
  MMF_CHECK(rc == MDB_SUCCESS, IOError, path, ": LMDB ", what, " failed (", mdb_strerror(rc), ")");
}

class LmdbDb : public RecordDb {
 public:
  explicit LmdbDb(const std::string& path) {
    path_ = path;
    lmdb_check(mdb_env_create(&env_), path, "environment creation");
    // Read-only, no lock file written, read transactions not tied to threads (the prefetch
    // workers share them). The map size is the database's own (LMDB reads it from the file).
    int rc = mdb_env_open(env_, path.c_str(), MDB_RDONLY | MDB_NOTLS | MDB_NOLOCK, 0664);
    if (rc != MDB_SUCCESS) {
      mdb_env_close(env_);
      env_ = nullptr;
      lmdb_check(rc, path, "open");
    }
    MDB_txn* txn = nullptr;
    lmdb_check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), path, "read transaction");
    lmdb_check(mdb_dbi_open(txn, nullptr, 0, &dbi_), path, "database open");
    MDB_cursor* cursor = nullptr;
    lmdb_check(mdb_cursor_open(txn, dbi_, &cursor), path, "cursor");
    MDB_val key, value;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT))
      add_key(std::string_view(static_cast<const char*>(key.mv_data), key.mv_size));
    mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
    if (rc != MDB_NOTFOUND) lmdb_check(rc, path, "cursor walk");
  }
  ~LmdbDb() override {
    if (env_) mdb_env_close(env_);
  }
  std::string value(int64_t index) const override {
    const std::string_view k = key(index);
    MDB_txn* txn = nullptr;
    lmdb_check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), path_, "read transaction");
    MDB_val key{k.size(), const_cast<char*>(k.data())}, value;
    int rc = mdb_get(txn, dbi_, &key, &value);
    std::string out = rc == MDB_SUCCESS ? std::string(static_cast<const char*>(value.mv_data), value.mv_size) : "";
    mdb_txn_abort(txn);
    lmdb_check(rc, path_, "read of a record");
    return out;
  }

 private:
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
};
#endif

#ifdef MMFUSE_WITH_LEVELDB
class LevelDb : public RecordDb {
 public:
  explicit LevelDb(const std::string& path) {
    path_ = path;
    leveldb::Options options;
    options.create_if_missing = false;
    leveldb::DB* db = nullptr;
    leveldb::Status s = leveldb::DB::Open(options, path, &db);
    MMF_CHECK(s.ok(), IOError, path, ": LevelDB open failed (", s.ToString(), ")");
    db_.reset(db);
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) add_key(std::string_view(it->key().data(), it->key().size()));
    MMF_CHECK(it->status().ok(), IOError, path, ": LevelDB read failed (", it->status().ToString(), ")");
  }
  std::string value(int64_t index) const override {
    std::string out;
    const std::string_view k = key(index);
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), leveldb::Slice(k.data(), k.size()), &out);
    MMF_CHECK(s.ok(), IOError, path_, ": LevelDB read of record ", index, " failed (", s.ToString(), ")");
    return out;
  }

 private:
  std::unique_ptr<leveldb::DB> db_;
};
#endif

}  // namespace

const char* backend_name(RecordBackend backend) { return backend == RecordBackend::kLmdb ? "LMDB" : "LevelDB"; }

bool backend_available(RecordBackend backend) {
#ifdef MMFUSE_WITH_LMDB
  if (backend == RecordBackend::kLmdb) return true;
#endif
#ifdef MMFUSE_WITH_LEVELDB
  if (backend == RecordBackend::kLevelDb) return true;
#endif
  (void)backend;
  return false;
}

std::shared_ptr<const RecordDb> open_record_db(const std::string& path, RecordBackend backend) {
  MMF_CHECK(std::filesystem::is_directory(path), IOError, path, ": not found (expected ",
            backend == RecordBackend::kLmdb ? "an " : "a ", backend_name(backend), " database folder)");
  static std::mutex mutex;
  static std::map<std::pair<std::string, RecordBackend>, std::weak_ptr<const RecordDb>> open;
  const auto id = std::make_pair(std::filesystem::weakly_canonical(path).string(), backend);
  std::lock_guard<std::mutex> lock(mutex);
  if (auto db = open[id].lock()) return db;
  std::shared_ptr<const RecordDb> db;
#ifdef MMFUSE_WITH_LMDB
  if (backend == RecordBackend::kLmdb) db = std::make_shared<LmdbDb>(path);
#endif
#ifdef MMFUSE_WITH_LEVELDB
  if (backend == RecordBackend::kLevelDb) db = std::make_shared<LevelDb>(path);
#endif
  if (!db) not_built(path, backend);
  MMF_CHECK(db->size() > 0, IOError, path, ": the ", backend_name(backend), " database holds no records");
  open[id] = db;
  return db;
}

void write_record_db(const std::string& path, RecordBackend backend,
                     const std::vector<std::pair<std::string, std::string>>& records) {
  MMF_CHECK(!std::filesystem::exists(path), IOError, path, ": already exists (a new database is written)");
#ifdef MMFUSE_WITH_LMDB
  if (backend == RecordBackend::kLmdb) {
    std::filesystem::create_directories(path);
    MDB_env* env = nullptr;
    lmdb_check(mdb_env_create(&env), path, "environment creation");
    size_t bytes = 1 << 20;
    for (const auto& [k, v] : records) bytes += 2 * (k.size() + v.size()) + 64;
    mdb_env_set_mapsize(env, bytes);
    int rc = mdb_env_open(env, path.c_str(), 0, 0664);
    MDB_txn* txn = nullptr;
    MDB_dbi dbi = 0;
    if (rc == MDB_SUCCESS) rc = mdb_txn_begin(env, nullptr, 0, &txn);
    if (rc == MDB_SUCCESS) rc = mdb_dbi_open(txn, nullptr, 0, &dbi);
    for (size_t i = 0; rc == MDB_SUCCESS && i < records.size(); ++i) {
      MDB_val key{records[i].first.size(), const_cast<char*>(records[i].first.data())};
      MDB_val value{records[i].second.size(), const_cast<char*>(records[i].second.data())};
      rc = mdb_put(txn, dbi, &key, &value, 0);
    }
    if (rc == MDB_SUCCESS) {
      rc = mdb_txn_commit(txn);
    } else if (txn) {
      mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    lmdb_check(rc, path, "write");
    return;
  }
#endif
#ifdef MMFUSE_WITH_LEVELDB
  if (backend == RecordBackend::kLevelDb) {
    leveldb::Options options;
    options.create_if_missing = true;
    options.error_if_exists = true;
    leveldb::DB* raw = nullptr;
    leveldb::Status s = leveldb::DB::Open(options, path, &raw);
    MMF_CHECK(s.ok(), IOError, path, ": LevelDB open failed (", s.ToString(), ")");
    std::unique_ptr<leveldb::DB> db(raw);
    leveldb::WriteBatch batch;
    for (const auto& [k, v] : records) batch.Put(k, v);
    s = db->Write(leveldb::WriteOptions(), &batch);
    MMF_CHECK(s.ok(), IOError, path, ": LevelDB write failed (", s.ToString(), ")");
    return;
  }
#endif
  (void)records;
  not_built(path, backend);
}

}  // namespace mmfuse::datasets
