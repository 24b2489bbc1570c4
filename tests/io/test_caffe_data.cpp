// Caffe's data layers: Data over LMDB and LevelDB databases written here (raw, float and encoded
// Datum records), ImageData over a list file, HDF5Data over .h5 files written here, DummyData;
// transform_param's exact values (mean_file, mean_value, scale, crop, mirror) on hand-made
// data; determinism with any number of threads; a few training iterations from each source.
// Tests needing a library this build lacks say so and stop.
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/caffemodel.h"
#include "core/layer.h"
#include "core/net.h"
#include "core/prototxt.h"
#include "core/solver.h"
#include "datasets/caffe_db.h"
#include "datasets/caffe_transform.h"
#include "datasets/hdf5_file.h"
#include "datasets/image.h"
#include "doctest/doctest.h"
#include "tests/layers/built_layer.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
using namespace mmfuse::datasets;
using mmfuse::testing::build;
using mmfuse::testing::Built;
using mmfuse::testing::error_of;
using mmfuse::testing::TempDir;

namespace {

// Sample k of the hand-made data: value(c, y, x) = 100 c + 10 y + x + k, C x H x W = 3 x 5 x 6.
constexpr int kC = 3, kH = 5, kW = 6, kRecords = 6;
float value(int k, int c, int y, int x) { return static_cast<float>(100 * c + 10 * y + x + k); }

CaffeSample sample(int k) {
  CaffeSample s{kC, kH, kW, {}, k};
  for (int c = 0; c < kC; ++c)
    for (int y = 0; y < kH; ++y)
      for (int x = 0; x < kW; ++x) s.values.push_back(value(k, c, y, x));
  return s;
}

std::string raw_datum(int k) {
  caffe::Datum d;
  d.set_channels(kC);
  d.set_height(kH);
  d.set_width(kW);
  d.set_label(k);
  std::string bytes;
  for (float v : sample(k).values) bytes.push_back(static_cast<char>(static_cast<uint8_t>(v)));
  d.set_data(bytes);
  return d.SerializeAsString();
}

std::vector<std::pair<std::string, std::string>> records() {
  std::vector<std::pair<std::string, std::string>> r;
  for (int k = 0; k < kRecords; ++k) {
    char key[16];
    std::snprintf(key, sizeof key, "%08d", k);
    r.emplace_back(key, raw_datum(k));
  }
  return r;
}

// The expected transform of sample k: (value - mean) * scale at source (y + oy, x + ox),
// written at x or, flipped, at out_w - 1 - x.
std::vector<float> expected(int k, int crop, int oy, int ox, bool flip, const std::vector<float>& mean, float scale,
                            const std::vector<float>* mean_image = nullptr) {
  const int h = crop ? crop : kH, w = crop ? crop : kW;
  std::vector<float> out(static_cast<size_t>(kC) * h * w);
  for (int c = 0; c < kC; ++c)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const int sy = y + oy, sx = x + ox;
        const float m = mean_image     ? (*mean_image)[(c * kH + sy) * kW + sx]
                        : mean.empty() ? 0.f
                                       : mean[mean.size() == 1 ? 0 : c];
        out[(c * h + y) * w + (flip ? w - 1 - x : x)] = (value(k, c, sy, sx) - m) * scale;
      }
  return out;
}

std::vector<float> slice(const Tensor& t, int64_t j) {
  auto v = t.to_vector<float>();
  const int64_t n = shape_numel(t.shape()) / t.shape()[0];
  return std::vector<float>(v.begin() + j * n, v.begin() + (j + 1) * n);
}

bool same(const TensorList& a, const TensorList& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].shape() != b[i].shape() || std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes()) != 0) return false;
  return true;
}

}  // namespace

TEST_CASE("caffe transform: mean_value, scale, centre crop, then random crop and mirror in Caffe's order") {
  proto::TransformationParameter p;
  parse_text("scale: 0.5 mean_value: 1 mean_value: 2 mean_value: 3 crop_size: 3", "<t>", p);
  CaffeTransform t = CaffeTransform::from_param(p, "layer");
  CHECK(t.sample_shape(kC, kH, kW, "layer") == Shape{kC, 3, 3});
  std::vector<float> out(27);
  t.apply(sample(2), nullptr, out.data());  // TEST: centre, offsets (5-3)/2 = 1 and (6-3)/2 = 1
  CHECK(out == expected(2, 3, 1, 1, false, {1, 2, 3}, 0.5f));
  CHECK(out[0] == doctest::Approx((11 + 2 - 1) * 0.5));

  t.mirror = true;
  int flips = 0;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    Generator gen(seed), replay(seed);
    t.apply(sample(1), &gen, out.data());
    const bool flip = replay.below(2) == 1;  // Caffe's draws: mirror, then the crop's y, then x
    const int oy = static_cast<int>(replay.below(kH - 3 + 1)), ox = static_cast<int>(replay.below(kW - 3 + 1));
    CHECK(out == expected(1, 3, oy, ox, flip, {1, 2, 3}, 0.5f));
    flips += flip;
  }
  CHECK(flips > 0);
  CHECK(flips < 16);

  parse_text("mean_value: 1 mean_value: 2", "<t>", p);
  CHECK(error_of([&] { CaffeTransform::from_param(p, "L").sample_shape(kC, kH, kW, "L"); })
            .find("L: 2 mean_value entries for 3 channels (give 1 or 3)") != std::string::npos);
}

TEST_CASE("caffe batches shard: 2 ranks of batch B make the halves of 1 process's batch 2B, augmentation included") {
  // The Data and ImageData layers make their batches with make_caffe_batch; under mpirun each
  // rank passes its BatchShard. Samples differ by value and label; shuffle, crop and mirror on.
  const int count = 23, B = 3;
  auto load = [](int64_t i) {
    CaffeSample s;
    s.channels = 1, s.height = 4, s.width = 5;
    for (int k = 0; k < 20; ++k) s.values.push_back(static_cast<float>(i * 100 + k));
    s.label = static_cast<int>(i);
    return s;
  };
  auto name = [](int64_t i) { return "sample " + std::to_string(i); };
  CaffeTransform t;
  t.mirror = true;
  t.crop_size = 3;
  EpochOrder order(count, 5, /*shuffle=*/true);
  for (int64_t b : {0, 1, 7, 8}) {  // batches 7 and 8 cross an epoch (2B * 8 > 23)
    const HostBatch whole = make_caffe_batch(b, 2 * B, BatchShard{}, 2, order, 9, true, t, load(0), load, name);
    for (int64_t rank : {0, 1}) {
      INFO("batch " << b << " rank " << rank);
      const HostBatch part = make_caffe_batch(b, B, BatchShard{rank, 2}, 2, order, 9, true, t, load(0), load, name);
      const size_t per = part[0].values.size() / B;
      CHECK(std::equal(part[0].values.begin(), part[0].values.end(), whole[0].values.begin() + rank * B * per));
      CHECK(std::equal(part[1].ints.begin(), part[1].ints.end(), whole[1].ints.begin() + rank * B));
    }
  }
}

TEST_CASE("caffe transform: mean_file (a .binaryproto, legacy 4-d) is subtracted at the source pixel before the crop") {
  TempDir tmp("caffe_mean");
  caffe::BlobProto mean;
  mean.set_num(1);
  mean.set_channels(kC);
  mean.set_height(kH);
  mean.set_width(kW);
  std::vector<float> image;
  for (int i = 0; i < kC * kH * kW; ++i) image.push_back(0.25f * static_cast<float>(i % 7));
  for (float v : image) mean.add_data(v);
  std::ofstream(tmp / "mean.binaryproto", std::ios::binary) << mean.SerializeAsString();
  proto::TransformationParameter p;
  parse_text("scale: 2 crop_size: 4 mean_file: '" + (tmp / "mean.binaryproto") + "'", "<t>", p);
  CaffeTransform t = CaffeTransform::from_param(p, "layer");
  std::vector<float> out(kC * 16);
  t.apply(sample(3), nullptr, out.data());  // centre: (5-4)/2 = 0, (6-4)/2 = 1
  CHECK(out == expected(3, 4, 0, 1, false, {}, 2.f, &image));
  CHECK(error_of([&] { t.sample_shape(kC, kH + 1, kW, "layer 'd'"); }).find("mean_file is 3 x 5 x 6") !=
        std::string::npos);
  parse_text("mean_value: 3 mean_file: '" + (tmp / "mean.binaryproto") + "'", "<t>", p);
  CHECK(error_of([&] { CaffeTransform::from_param(p, "L"); }).find("not both") != std::string::npos);
}

TEST_CASE("Data layer: LMDB and LevelDB records in key order, the transform's values, labels, any thread count") {
  TempDir tmp("caffe_db");
  for (auto backend : {RecordBackend::kLmdb, RecordBackend::kLevelDb}) {
    CAPTURE(backend_name(backend));
    if (!backend_available(backend)) {
      MESSAGE("skipped: this build has no " << std::string(backend_name(backend))
                                              << " (install it: scripts/install-deps)");
      continue;
    }
    const bool lmdb = backend == RecordBackend::kLmdb;
    const std::string db = tmp / (lmdb ? "lmdb" : "leveldb");
    write_record_db(db, backend, records());
    const std::string layer = "name: 'd' type: 'Data' top: 'data' top: 'label' data_param { source: '" + db +
                              "' backend: " + (lmdb ? "LMDB" : "LEVELDB") + " batch_size: 4 THREADS } " +
                              "transform_param { scale: 0.5 mean_value: 10 crop_size: 3 MIRROR }";
    auto text = [&](int threads, bool mirror) {
      std::string s = layer;
      s.replace(s.find("THREADS"), 7, "threads: " + std::to_string(threads));
      s.replace(s.find("MIRROR"), 6, mirror ? "mirror: true" : "");
      return s;
    };
    Built test = build(text(0, false), proto::TEST);
    CHECK(test.shapes == std::vector<Shape>{{4, kC, 3, 3}, {4}});
    for (int64_t b = 0; b < 2; ++b) {
      TensorList t = test.batch(b);
      REQUIRE(t[1].dtype() == DType::i32);
      for (int j = 0; j < 4; ++j) {
        const int k = static_cast<int>((b * 4 + j) % kRecords);  // wraps after the last record
        CHECK(t[1].to_vector<int32_t>()[j] == k);
        CHECK(slice(t[0], j) == expected(k, 3, 1, 1, false, {10}, 0.5f));
      }
    }
    // Older files' data_param { scale crop_size } move to transform_param; one top: no label.
    const std::string legacy = "name: 'd' type: 'Data' top: 'data' data_param { source: '" + db + "' backend: " +
                               (lmdb ? "LMDB" : "LEVELDB") +
                               " batch_size: 4 scale: 0.5 crop_size: 3 } transform_param { mean_value: 10 }";
    Built old = build(legacy, proto::TEST);
    TensorList o = old.batch(1);
    REQUIRE(o.size() == 1);
    CHECK(same(o, {test.batch(1)[0]}));
    CHECK(error_of([&] {
            build("name: 'd' type: 'Data' top: 'data' data_param { source: '" + db + "' batch_size: 1 scale: 2 } "
                  "transform_param { scale: 3 }",
                  proto::TEST);
          }).find("scale is given in transform_param and in the data parameters") != std::string::npos);
    // TRAIN with random crops and flips: the same batches from 0 and 3 threads, asked in any order.
    Built a = build(text(0, true), proto::TRAIN), c = build(text(3, true), proto::TRAIN);
    std::vector<TensorList> first;
    for (int64_t b = 0; b < 4; ++b) first.push_back(a.batch(b));
    CHECK(same(c.batch(0), first[0]));
    CHECK(same(c.batch(1), first[1]));
    CHECK(same(c.batch(3), first[3]));
    CHECK(same(c.batch(2), first[2]));
    CHECK_FALSE(same(first[0], first[3]));  // the labels repeat (0 1 2 3 / 0 1 2 3), the crops differ
    // Every TRAIN sample is some crop of its record, flipped or not.
    for (int j = 0; j < 4; ++j) {
      bool found = false;
      for (int oy = 0; oy <= kH - 3; ++oy)
        for (int ox = 0; ox <= kW - 3; ++ox)
          for (bool flip : {false, true})
            found = found || slice(first[1][0], j) == expected((4 + j) % kRecords, 3, oy, ox, flip, {10}, 0.5f);
      CHECK(found);
    }
  }
}

TEST_CASE("Data layer: float_data and encoded (PNG, BGR as Caffe's OpenCV) records; errors name the record") {
  if (!backend_available(RecordBackend::kLmdb)) {
    MESSAGE("skipped: this build has no LMDB (install liblmdb-dev: scripts/install-deps)");
    return;
  }
  TempDir tmp("caffe_db_kinds");
  caffe::Datum f;
  f.set_channels(1);
  f.set_height(2);
  f.set_width(2);
  f.set_label(7);
  for (float v : {0.5f, -1.f, 2.f, 300.f}) f.add_float_data(v);
  Image rgb(2, 2, 3);  // pixel (y, x): R = 10 + x, G = 20 + y, B = 30
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x) {
      rgb.at(y, x, 0) = static_cast<uint16_t>(10 + x);
      rgb.at(y, x, 1) = static_cast<uint16_t>(20 + y);
      rgb.at(y, x, 2) = 30;
    }
  caffe::Datum e;
  e.set_encoded(true);
  e.set_label(3);
  const auto png = encode_png(rgb);
  e.set_data(std::string(png.begin(), png.end()));
  write_record_db(tmp / "float", RecordBackend::kLmdb, {{"a", f.SerializeAsString()}});
  write_record_db(tmp / "encoded", RecordBackend::kLmdb, {{"a", e.SerializeAsString()}});
  auto layer = [&](const std::string& db, const std::string& extra = "") {
    return "name: 'd' type: 'Data' top: 'data' top: 'label' data_param { source: '" + (tmp / db) +
           "' backend: LMDB batch_size: 1 } " + extra;
  };
  Built fl = build(layer("float", "transform_param { scale: 2 }"), proto::TEST);
  TensorList t = fl.batch(0);
  CHECK(t[0].to_vector<float>() == std::vector<float>{1.f, -2.f, 4.f, 600.f});
  CHECK(t[1].to_vector<int32_t>() == std::vector<int32_t>{7});

  Built en = build(layer("encoded"), proto::TEST);
  CHECK(en.shapes[0] == Shape{1, 3, 2, 2});
  t = en.batch(0);
  CHECK(t[0].to_vector<float>() == std::vector<float>{30, 30, 30, 30, 20, 20, 21, 21, 10, 11, 10, 11});
  CHECK(t[1].to_vector<int32_t>() == std::vector<int32_t>{3});
  Built gray = build(layer("encoded", "transform_param { force_gray: true }"), proto::TEST);
  CHECK(gray.shapes[0] == Shape{1, 1, 2, 2});

  caffe::Datum huge;  // sizes whose product overflows: refused before any allocation
  huge.set_channels(1 << 30);
  huge.set_height(1 << 30);
  huge.set_width(1 << 30);
  huge.set_data("x");
  CHECK(error_of([&] { decode_datum(huge, ColorMode::kNative, "rec"); }).find("rec: a Datum of size") !=
        std::string::npos);
  // A record of another size than the first: the batch holding it names it.
  caffe::Datum small = f;
  small.set_width(1);
  small.mutable_float_data()->Truncate(2);
  write_record_db(tmp / "mixed", RecordBackend::kLmdb,
                  {{"a", f.SerializeAsString()}, {"b", small.SerializeAsString()}});
  Built mixed = build(layer("mixed"), proto::TEST);
  CHECK(mixed.batch(0)[1].to_vector<int32_t>() == std::vector<int32_t>{7});
  CHECK(error_of([&] { mixed.batch(1); }).find("record 1 (key 'b'): 1 x 2 x 1 where the first record is 1 x 2 x 2") !=
        std::string::npos);
  write_record_db(tmp / "junk", RecordBackend::kLmdb, {{"key1", "\xff\xff\xff"}});
  CHECK(error_of([&] { build(layer("junk"), proto::TEST); }).find("record 0 (key 'key1'): not a serialized Datum") !=
        std::string::npos);
  CHECK(error_of([&] { build(layer("absent"), proto::TEST); }).find("absent: not found (expected an LMDB database folder)") != std::string::npos);
}

TEST_CASE("ImageData layer: list file, root_folder, is_color, new_height/new_width, shuffle") {
  TempDir tmp("caffe_image_data");
  std::filesystem::create_directories(tmp.path / "img");
  std::ofstream list(tmp / "list.txt");
  for (int k = 0; k < 3; ++k) {
    Image im(4, 2, 3);  // 4 wide, 2 high; R = 10 k + x, G = y, B = 200: BGR in the top
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 4; ++x) {
        im.at(y, x, 0) = static_cast<uint16_t>(10 * k + x);
        im.at(y, x, 1) = static_cast<uint16_t>(y);
        im.at(y, x, 2) = 200;
      }
    write_png(tmp / ("img/" + std::to_string(k) + ".png"), im);
    list << std::to_string(k) << ".png " << 5 + k << "\n";
  }
  list.close();
  const std::string base = "name: 'd' type: 'ImageData' top: 'data' top: 'label' image_data_param { source: '" +
                           (tmp / "list.txt") + "' root_folder: '" + (tmp / "img") + "/' batch_size: 2 ";
  Built b = build(base + "}", proto::TEST);
  CHECK(b.shapes[0] == Shape{2, 3, 2, 4});
  TensorList t = b.batch(1);  // images 2 and 0
  CHECK(t[1].to_vector<int32_t>() == std::vector<int32_t>{7, 5});
  CHECK(slice(t[0], 0) == std::vector<float>{200, 200, 200, 200, 200, 200, 200, 200, 0, 0, 0, 0, 1, 1, 1, 1,
                                             20, 21, 22, 23, 20, 21, 22, 23});
  Built gray = build(base + "is_color: false new_height: 4 new_width: 2 }", proto::TEST);
  CHECK(gray.shapes[0] == Shape{2, 1, 4, 2});
  Built resized = build(base + "new_height: 4 new_width: 8 }", proto::TEST);
  t = resized.batch(0);
  // Blue is constant, so bilinear resizing keeps it; a 2x upscale of a ramp stays within its range.
  auto first = slice(t[0], 0);
  for (int i = 0; i < 32; ++i) CHECK(first[i] == 200);
  for (int i = 64; i < 96; ++i) CHECK((first[i] >= 0 && first[i] <= 3));
  // shuffle: a permutation of the three images per epoch, the same for the same seed.
  Built s1 = build(base + "shuffle: true seed: 5 }", proto::TRAIN);
  Built s2 = build(base + "shuffle: true seed: 5 }", proto::TRAIN);
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < 3; ++i) {
    TensorList x = s1.batch(i);
    CHECK(same(x, s2.batch(i)));
    for (int32_t l : x[1].to_vector<int32_t>()) labels.push_back(l);
  }
  std::vector<int32_t> epoch0(labels.begin(), labels.begin() + 3);
  std::sort(epoch0.begin(), epoch0.end());
  CHECK(epoch0 == std::vector<int32_t>{5, 6, 7});
  CHECK(error_of([&] { build(base + "new_height: 4 }", proto::TEST); }).find("both new_height and new_width") !=
        std::string::npos);
}

TEST_CASE("HDF5Data layer: datasets named by the tops, files concatenated, shuffle; errors name the file") {
  if (!hdf5_available()) {
    MESSAGE("skipped: this build has no HDF5 (install libhdf5-dev: scripts/install-deps)");
    return;
  }
  TempDir tmp("caffe_hdf5");
  // File f holds rows 3f .. 3f+2: data row r = [r, r + 0.5] x 2 rows ([2, 2] per row), label r.
  for (int f = 0; f < 2; ++f) {
    Hdf5Array data{{3, 2, 2}, {}}, label{{3}, {}};
    for (int r = 3 * f; r < 3 * f + 3; ++r) {
      for (int i = 0; i < 4; ++i) data.values.push_back(static_cast<float>(r) + 0.5f * static_cast<float>(i));
      label.values.push_back(static_cast<float>(r));
    }
    write_hdf5_file(tmp / (f == 0 ? "f0.h5" : "f1.h5"), {{"data", data}, {"label", label}});
  }
  std::ofstream(tmp / "list.txt") << tmp / "f0.h5" << "\n" << tmp / "f1.h5" << "\n";
  const std::string base = "name: 'h' type: 'HDF5Data' top: 'data' top: 'label' hdf5_data_param { source: '" +
                           (tmp / "list.txt") + "' batch_size: 4 ";
  Built h = build(base + "}", proto::TRAIN);
  CHECK(h.shapes == std::vector<Shape>{{4, 2, 2}, {4}});
  TensorList t = h.batch(1);  // rows 4 5 0 1
  CHECK(t[1].to_vector<float>() == std::vector<float>{4, 5, 0, 1});
  CHECK(slice(t[0], 1) == std::vector<float>{5, 5.5f, 6, 6.5f});
  Built s = build(base + "shuffle: true }", proto::TRAIN);
  std::vector<float> labels = s.batch(0)[1].to_vector<float>();
  for (float l : s.batch(1)[1].to_vector<float>()) labels.push_back(l);
  std::vector<float> epoch0(labels.begin(), labels.begin() + 6);
  std::sort(epoch0.begin(), epoch0.end());
  CHECK(epoch0 == std::vector<float>{0, 1, 2, 3, 4, 5});
  CHECK(labels != std::vector<float>{0, 1, 2, 3, 4, 5, 0, 1});
  std::string e = error_of([&] {
    build("name: 'h' type: 'HDF5Data' top: 'pixels' hdf5_data_param { source: '" + (tmp / "list.txt") +
              "' batch_size: 1 }",
          proto::TRAIN);
  });
  CHECK(e.find("f0.h5: no dataset 'pixels'") != std::string::npos);
}

TEST_CASE("DummyData layer: shapes, legacy sizes, constant and random fillers drawn per batch") {
  Built d = build("name: 'd' type: 'DummyData' top: 'a' top: 'b' dummy_data_param { shape { dim: 2 dim: 3 } "
                  "shape { dim: 4 } data_filler { type: 'constant' value: 3 } data_filler { type: 'gaussian' } }",
                  proto::TRAIN);
  CHECK(d.shapes == std::vector<Shape>{{2, 3}, {4}});
  TensorList t0 = d.batch(0), t1 = d.batch(1);
  CHECK(t0[0].to_vector<float>() == std::vector<float>(6, 3.f));
  CHECK(same(t0, d.batch(0)));
  CHECK(t0[1].to_vector<float>() != t1[1].to_vector<float>());
  Built legacy = build("name: 'd' type: 'DummyData' top: 'a' top: 'b' dummy_data_param { num: 2 channels: 3 "
                       "height: 4 width: 5 height: 1 }",
                       proto::TEST);
  CHECK(legacy.shapes == std::vector<Shape>{{2, 3, 4, 5}, {2, 3, 1, 5}});
  CHECK(legacy.batch(0)[1].to_vector<float>() == std::vector<float>(30, 0.f));
  CHECK(error_of([&] {
          build("name: 'd' type: 'DummyData' top: 'a' top: 'b' top: 'c' dummy_data_param { shape { dim: 1 } "
                "shape { dim: 2 } }",
                proto::TEST);
        }).find("give 1 or 3 shape") != std::string::npos);
}

TEST_CASE("Caffe data layers train: LMDB and HDF5 sources through InnerProduct to a loss") {
  TempDir tmp("caffe_data_train");
  std::vector<std::string> nets;
  if (backend_available(RecordBackend::kLmdb)) {
    write_record_db(tmp / "lmdb", RecordBackend::kLmdb, records());
    nets.push_back("layer { name: 'd' type: 'Data' top: 'data' top: 'label' data_param { source: '" + (tmp / "lmdb") +
                   "' backend: LMDB batch_size: 3 } transform_param { scale: 0.00390625 crop_size: 4 mirror: true } }\n"
                   "layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' inner_product_param { "
                   "num_output: 6 } }\n"
                   "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }\n");
  }
  if (hdf5_available()) {
    Hdf5Array data{{8, 3}, {}}, target{{8, 1}, {}};
    for (int r = 0; r < 8; ++r) {
      for (int i = 0; i < 3; ++i) data.values.push_back(0.1f * static_cast<float>(r * 3 + i));
      target.values.push_back(static_cast<float>(r % 3));
    }
    write_hdf5_file(tmp / "train.h5", {{"data", data}, {"target", target}});
    std::ofstream(tmp / "h5list.txt") << tmp / "train.h5" << "\n";
    nets.push_back("layer { name: 'd' type: 'HDF5Data' top: 'data' top: 'target' hdf5_data_param { source: '" +
                   (tmp / "h5list.txt") + "' batch_size: 4 shuffle: true } }\n"
                   "layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' inner_product_param { "
                   "num_output: 1 } }\n"
                   "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'ip' bottom: 'target' top: 'loss' }\n");
  }
  if (nets.empty()) MESSAGE("skipped: this build has neither LMDB nor HDF5");
  for (const std::string& net : nets) {
    CAPTURE(net);
    std::string text = "net_param { ";
    text += net;
    text += " }\nbase_lr: 0.05 momentum: 0.9 max_iter: 30\nsnapshot_after_train: false random_seed: 1\n";
    text += "snapshot_prefix: '" + (tmp / "snap") + "'\n";
    SolverOptions quiet;
    quiet.out = nullptr;
    Solver solver(read_solver_text(text, "<solver>"), "", quiet);
    auto loss_now = [&] {
      double sum = 0;
      for (int64_t b = 0; b < 4; ++b) sum += solver.net().forward({}, b).at("loss").item();
      return sum;
    };
    const double before = loss_now();
    REQUIRE(solver.solve() == Solver::Outcome::finished);
    CHECK(loss_now() < before);
  }
}

TEST_CASE("Caffe's cifar10_quick layout: mmfuse train from LMDBs with a mean file, fine-tuned from a .caffemodel") {
  const auto binary = mmfuse::testing::mmfuse_binary();
  if (!std::filesystem::exists(binary) || !backend_available(RecordBackend::kLmdb)) {
    MESSAGE("skipped: no mmfuse binary next to the tests, or no LMDB in this build");
    return;
  }
  TempDir tmp("caffe_quick");
  // Caffe's example layout, paths relative to the working directory as in Caffe's examples.
  std::filesystem::create_directories(tmp.path / "examples/quick");
  write_record_db(tmp / "examples/quick/train_lmdb", RecordBackend::kLmdb, records());
  write_record_db(tmp / "examples/quick/test_lmdb", RecordBackend::kLmdb, records());
  caffe::BlobProto mean;
  for (int64_t d : {1, kC, kH, kW}) mean.mutable_shape()->add_dim(d);
  for (int i = 0; i < kC * kH * kW; ++i) mean.add_data(100);
  std::ofstream(tmp / "examples/quick/mean.binaryproto", std::ios::binary) << mean.SerializeAsString();
  auto data_layer = [](const char* phase, const char* db) {
    return std::string("layer {\n  name: \"quick\"\n  type: \"Data\"\n  top: \"data\"\n  top: \"label\"\n") +
           "  include {\n    phase: " + phase + "\n  }\n  transform_param {\n    mean_file: "
           "\"examples/quick/mean.binaryproto\"\n    scale: 0.01\n  }\n  data_param {\n    source: \"examples/quick/" +
           db + "\"\n    batch_size: 3\n    backend: LMDB\n  }\n}\n";
  };
  std::ofstream(tmp / "examples/quick/train_test.prototxt")
      << "name: \"quick\"\n" << data_layer("TRAIN", "train_lmdb") << data_layer("TEST", "test_lmdb")
      << "layer { name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\"\n"
         "  param { lr_mult: 1 } param { lr_mult: 2 }\n"
         "  convolution_param { num_output: 4 pad: 1 kernel_size: 3 weight_filler { type: \"gaussian\" std: 0.1 } } }\n"
         "layer { name: \"pool1\" type: \"Pooling\" bottom: \"conv1\" top: \"pool1\"\n"
         "  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
         "layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"pool1\" top: \"ip1\"\n"
         "  inner_product_param { num_output: 6 weight_filler { type: \"gaussian\" std: 0.1 } } }\n"
         "layer { name: \"accuracy\" type: \"Accuracy\" bottom: \"ip1\" bottom: \"label\" top: \"accuracy\"\n"
         "  include { phase: TEST } }\n"
         "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip1\" bottom: \"label\" top: \"loss\" }\n";
  std::ofstream(tmp / "examples/quick/solver.prototxt")
      << "net: \"examples/quick/train_test.prototxt\"\ntest_iter: 2\ntest_interval: 4\nbase_lr: 0.01\n"
         "momentum: 0.9\nlr_policy: \"fixed\"\ndisplay: 2\nmax_iter: 4\nsnapshot_prefix: \"examples/quick/quick\"\n"
         "solver_mode: CPU\n";
  // A .caffemodel with conv1's blobs (a pretrained first layer) and a classifier of another shape.
  caffe::NetParameter model;
  auto* conv = model.add_layer();
  conv->set_name("conv1");
  auto* w = conv->add_blobs();
  for (int64_t d : {4, kC, 3, 3}) w->mutable_shape()->add_dim(d);
  for (int i = 0; i < 4 * kC * 9; ++i) w->add_data(0.01f * static_cast<float>(i % 5));
  auto* b = conv->add_blobs();
  b->mutable_shape()->add_dim(4);
  for (int i = 0; i < 4; ++i) b->add_data(0.5f);
  auto* ip = model.add_layer();
  ip->set_name("ip1");
  auto* ipw = ip->add_blobs();
  for (int64_t d : {10, 36}) ipw->mutable_shape()->add_dim(d);
  for (int i = 0; i < 360; ++i) ipw->add_data(0);
  std::ofstream(tmp / "init.caffemodel", std::ios::binary) << model.SerializeAsString();

  auto run = [&](const std::string& args, std::string& out) { return mmfuse::testing::run_mmfuse(tmp.path, args, out); };
  std::string out;
  REQUIRE_MESSAGE(run("train --solver examples/quick/solver.prototxt --weights init.caffemodel", out) == 0, out);
  CHECK(out.find("Caffe .caffemodel") != std::string::npos);
  CHECK(out.find("conv1.weight  loaded") != std::string::npos);
  CHECK_MESSAGE(out.find("ip1.weight    shape mismatch (kept initialised)  net [6, 36] vs file [10, 36]") !=
                    std::string::npos,
                out);
  CHECK(out.find("accuracy") != std::string::npos);
  REQUIRE_MESSAGE(run("test --model examples/quick/train_test.prototxt --weights examples/quick/quick_iter_4.weights "
                      "--iterations 2",
                      out) == 0,
                  out);
  CHECK(out.find("accuracy") != std::string::npos);
}

TEST_CASE("Caffe's V1 files: DATA, IMAGE_DATA, HDF5_DATA and DUMMY_DATA layers upgrade with their parameters") {
  TempDir tmp("caffe_data_v1");
  std::string data_layer;
  if (backend_available(RecordBackend::kLmdb)) {
    write_record_db(tmp / "lmdb", RecordBackend::kLmdb, records());
    // Older files' transform fields sit in data_param; the upgrade keeps data_param as it is.
    data_layer = "layers { name: 'mnist' type: DATA top: 'data' top: 'label' data_param { source: '" + (tmp / "lmdb") +
                 "' backend: LMDB batch_size: 2 scale: 0.5 crop_size: 3 } }\n";
  } else {
    MESSAGE("no LMDB in this build: the V1 DATA layer is left out");
  }
  const proto::NetParameter net_param = read_net_text(
      "name: 'old'\n" + data_layer +
          "layers { name: 'noise' type: DUMMY_DATA top: 'noise' dummy_data_param { num: 2 channels: 1 height: 3 "
          "width: 3 data_filler { type: 'constant' value: 2 } } }\n",
      "old.prototxt");
  Net net(net_param, proto::TEST);
  auto out = net.forward({}, 0);
  CHECK(out.at("noise").to_vector<float>() == std::vector<float>(18, 2.f));
  if (!data_layer.empty()) {
    CHECK(out.at("data").shape() == Shape{2, kC, 3, 3});
    CHECK(slice(out.at("data"), 1) == expected(1, 3, 1, 1, false, {}, 0.5f));
    CHECK(out.at("label").to_vector<int32_t>() == std::vector<int32_t>{0, 1});
  }
}
