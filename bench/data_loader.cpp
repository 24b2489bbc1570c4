// Data loader throughput: samples/s of MultimodalImageData reading a synthetic RGB-D folder
// (PNG decoding + normalisation + paired augmentation) with 0 (synchronous), 1 and 2 prefetch
// threads, of SyntheticRgbdData generating scenes on the fly, and of Caffe's Data (an LMDB of
// raw and of PNG-encoded Datum records, where this build has LMDB) and ImageData (the RGB
// PNGs) with Caffe's transform (mean_value, crop, mirror). The consumer asks for batches
// back to back (no network), so the figures are the loader's ceiling. The batches the workers
// queued ahead while the clock was stopped (at most the prefetch depth, 4 by default in every
// layer here) are consumed before the clock starts, so they do not count as free batches.
//   bench_data_loader [samples=256] [size=64] [batches=40]   (batches > 2 x the prefetch depth)
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <unistd.h>

#include "core/layer.h"
#include "core/prototxt.h"
#include "core/proto/caffe.pb.h"
#include "datasets/caffe_db.h"
#include "datasets/image.h"
#include "datasets/synthetic_rgbd.h"

using namespace mmfuse;

namespace {

constexpr int kPrefetch = 4;  // the depth every layer below queues ahead (their default)

double samples_per_second(const std::string& text, int batches, int batch_size) {
  proto::LayerParameter lp;
  parse_text(text, "<bench>", lp);
  auto layer = create_layer(lp);
  Generator gen(1);
  LayerContext lctx{gen};
  layer->setup({}, lctx);
  ForwardContext ctx;
  ctx.iteration = 0;
  layer->forward({}, ctx);  // warm-up: starts the workers
  for (int b = 1; b <= kPrefetch; ++b) {  // drain what was queued before the clock starts
    ctx.iteration = b;
    layer->forward({}, ctx);
  }
  auto start = std::chrono::steady_clock::now();
  for (int b = kPrefetch + 1; b <= kPrefetch + batches; ++b) {
    ctx.iteration = b;
    layer->forward({}, ctx);
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return batches * batch_size / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  const int samples = argc > 1 ? std::stoi(argv[1]) : 256;
  const int size = argc > 2 ? std::stoi(argv[2]) : 64;
  const int batches = argc > 3 ? std::stoi(argv[3]) : 40;
  if (batches <= 2 * kPrefetch) {
    std::fprintf(stderr, "bench_data_loader: batches must exceed %d (twice the prefetch depth), got %d\n",
                 2 * kPrefetch, batches);
    return 2;
  }
  const int batch_size = 16;
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("mmfuse_bench_loader_" + std::to_string(::getpid()));
  fs::create_directories(dir / "rgb");
  fs::create_directories(dir / "depth");
  fs::create_directories(dir / "label");
  std::vector<std::pair<std::string, std::string>> raw, encoded;  // Caffe's Datum records
  {  // the layout `mmfuse make-dataset synthetic-rgbd` writes
    datasets::SyntheticRgbdSpec spec;
    spec.height = spec.width = size;
    std::ofstream list(dir / "train.txt"), caffe_list(dir / "caffe_list.txt");
    for (int i = 0; i < samples; ++i) {
      char name[16];
      std::snprintf(name, sizeof name, "%05d.png", i);
      auto s = datasets::make_synthetic_rgbd(spec, 1, i);
      datasets::write_png((dir / "rgb" / name).string(), s.rgb);
      datasets::write_png((dir / "depth" / name).string(), s.depth);
      datasets::write_png((dir / "label" / name).string(), s.label);
      list << "rgb/" << name << " depth/" << name << " label/" << name << "\n";
      caffe_list << "rgb/" << name << " " << i % 7 << "\n";
      caffe::Datum d;
      d.set_channels(3);
      d.set_height(size);
      d.set_width(size);
      d.set_label(i % 7);
      std::string pixels(static_cast<size_t>(3 * size * size), '\0');
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < size; ++y)
          for (int x = 0; x < size; ++x)
            pixels[(static_cast<size_t>(c) * size + y) * size + x] = static_cast<char>(s.rgb.at(y, x, 2 - c));
      d.set_data(pixels);
      raw.emplace_back(name, d.SerializeAsString());
      auto png = datasets::encode_png(s.rgb);
      d.clear_channels();
      d.clear_height();
      d.clear_width();
      d.set_encoded(true);
      d.set_data(std::string(png.begin(), png.end()));
      encoded.emplace_back(name, d.SerializeAsString());
    }
  }
  const int crop = size * 7 / 8;
  std::printf("data loader throughput: batch %d, %dx%d images (crop %d), %d batches, %u hardware threads\n",
              batch_size, size, size, crop, batches, std::thread::hardware_concurrency());
  std::printf("%-44s %8s %12s\n", "loader", "threads", "samples/s");
  for (int threads : {0, 1, 2}) {
    std::string text =
        "name: 'data' type: 'MultimodalImageData' top: 'data' top: 'label' multimodal_data_param { source: '" +
        (dir / "train.txt").string() + "' batch_size: " + std::to_string(batch_size) +
        " num_classes: 7 prefetch: 4 threads: " + std::to_string(threads) +
        " modality { name: 'rgb' channels: 3 scale: 0.00392157 mean: 0.485 mean: 0.456 mean: 0.406"
        " std: 0.229 std: 0.224 std: 0.225 }"
        " modality { name: 'depth' replicate: 3 scale: 0.001 interpolation: NEAREST }"
        " augmentation { scale_min: 0.75 scale_max: 1.25 crop_height: " +
        std::to_string(crop) + " crop_width: " + std::to_string(crop) + " mirror: true } }";
    std::printf("%-44s %8d %12.0f\n", "MultimodalImageData (PNG, scale/crop/flip)", threads,
                samples_per_second(text, batches, batch_size));
  }
  for (int threads : {0, 1, 2}) {
    std::string text = "name: 'data' type: 'SyntheticRgbdData' top: 'data' top: 'label' synthetic_rgbd_param {"
                       " batch_size: " + std::to_string(batch_size) + " size: " + std::to_string(size) +
                       " mirror: true prefetch: 4 threads: " + std::to_string(threads) + " }";
    std::printf("%-44s %8d %12.0f\n", "SyntheticRgbdData (on the fly)", threads,
                samples_per_second(text, batches, batch_size));
  }
  const std::string transform = "transform_param { mirror: true crop_size: " + std::to_string(crop) +
                                " mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.017 }";
  const bool lmdb = datasets::backend_available(datasets::RecordBackend::kLmdb);
  if (lmdb) {
    datasets::write_record_db((dir / "raw_lmdb").string(), datasets::RecordBackend::kLmdb, raw);
    datasets::write_record_db((dir / "png_lmdb").string(), datasets::RecordBackend::kLmdb, encoded);
  }
  for (const char* db : {"raw_lmdb", "png_lmdb"}) {
    if (!lmdb) break;
    for (int threads : {0, 1, 2}) {
      std::string text = "name: 'data' type: 'Data' top: 'data' top: 'label' data_param { source: '" +
                         (dir / db).string() + "' backend: LMDB batch_size: " + std::to_string(batch_size) +
                         " threads: " + std::to_string(threads) + " } " + transform;
      const char* label = db == std::string("raw_lmdb") ? "Data (LMDB, raw Datum)" : "Data (LMDB, PNG Datum)";
      std::printf("%-44s %8d %12.0f\n", label, threads, samples_per_second(text, batches, batch_size));
    }
  }
  for (int threads : {0, 1, 2}) {
    std::string text = "name: 'data' type: 'ImageData' top: 'data' top: 'label' image_data_param { source: '" +
                       (dir / "caffe_list.txt").string() + "' root_folder: '" + dir.string() +
                       "/' batch_size: " + std::to_string(batch_size) + " threads: " + std::to_string(threads) +
                       " } " + transform;
    std::printf("%-44s %8d %12.0f\n", "ImageData (PNG list)", threads, samples_per_second(text, batches, batch_size));
  }
  fs::remove_all(dir);
  return 0;
}
