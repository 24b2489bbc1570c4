// `mmfuse make-dataset`: writes a generated dataset to disk in the layout users' real data has
// (PNG files per modality plus list files), so that the file-based data path can be exercised
// and inspected without any download.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "base/error.h"
#include "datasets/image.h"
#include "datasets/scenes.h"
#include "datasets/synthetic_rgbd.h"
#include "tools/command.h"

namespace mmfuse::tools {
namespace {

const char* kUsage =
    "mmfuse make-dataset synthetic-rgbd     --out DIR [--train N] [--test N] [--size S] [--seed K]\n"
    "mmfuse make-dataset synthetic-rgbd-cls --out DIR [--train N] [--test N] [--size S] [--seed K]\n"
    "mmfuse make-dataset scenes             --out DIR [--count N | --train N --test N] [--size S] [--seed K]\n"
    "\n"
    "Writes DIR/rgb/NNNNN.png (8-bit RGB), DIR/depth/NNNNN.png (16-bit gray, millimetres, 0 = hole)\n"
    "and DIR/train.txt, DIR/test.txt (one sample per line, paths relative to DIR).\n"
    "synthetic-rgbd (segmentation) also writes DIR/label/NNNNN.png (8-bit class map, 7 classes) and\n"
    "list lines 'rgb/00000.png depth/00000.png label/00000.png'; synthetic-rgbd-cls (one object per\n"
    "image, 6 classes = 2 * appearance + geometry) lists 'rgb/00000.png depth/00000.png 3'.\n"
    "scenes (rendered rooms) writes DIR/<m>/NNNNN.png for m in rgb depth normal shading albedo edges\n"
    "label, DIR/train.txt, DIR/test.txt ('rgb/.. depth/.. label/..', 8 classes) and DIR/train_all.txt,\n"
    "DIR/test_all.txt (all six modalities, then the label); --count N splits N samples 4:1.\n"
    "Samples 0..N-1 of the seed are the training set, N..N+M-1 the test set.\n"
    "Defaults: --train 1000 --test 200 --size 64 --seed 1. See docs/datasets.md.";

void create_folders(const std::filesystem::path& out, const std::vector<std::string>& folders) {
  for (const auto& f : folders) {
    std::error_code ec;
    std::filesystem::create_directories(out / f, ec);
    MMF_CHECK(!ec, IOError, "make-dataset: cannot create '", (out / f).string(), "': ", ec.message());
  }
}

// Writes `text` to out/name (a list file).
void write_text(const std::filesystem::path& out, const char* name, const std::string& text) {
  std::filesystem::path path = out / name;
  std::ofstream file(path);
  MMF_CHECK(file, IOError, "make-dataset: cannot write '", path.string(), "'");
  file << text;
  file.close();
  MMF_CHECK(file, IOError, "make-dataset: cannot write '", path.string(), "'");
}

std::string sample_file(int index) {
  char file[16];
  std::snprintf(file, sizeof file, "%05d.png", index);
  return file;
}

// Calls work(i) for i in [0, count) on std::thread::hardware_concurrency() threads; rethrows
// the first failing thread's exception after all have stopped.
void parallel_for(int count, const std::function<void(int)>& work) {
  const int threads = std::max(1, std::min<int>(count, static_cast<int>(std::thread::hardware_concurrency())));
  std::atomic<int> next{0};
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        for (int i = next++; i < count; i = next++) work(i);
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
        next = count;  // the others stop at their next sample
      }
    });
  for (auto& thread : pool) thread.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

int make_dataset(const std::vector<std::string>& argv) {
  Args args("make-dataset", argv, {"out", "train", "test", "size", "seed", "count"});
  MMF_CHECK(args.positional().size() == 1, Error,
            "make-dataset: name one dataset: synthetic-rgbd, synthetic-rgbd-cls or scenes (see `mmfuse help "
            "make-dataset`)");
  const std::string kind = args.positional()[0];
  MMF_CHECK(kind == "synthetic-rgbd" || kind == "synthetic-rgbd-cls" || kind == "scenes", Error,
            "make-dataset: unknown dataset '", kind, "' (known: synthetic-rgbd, synthetic-rgbd-cls, scenes)");
  const bool classification = kind == "synthetic-rgbd-cls";
  MMF_CHECK(args.has("out"), Error, "make-dataset: --out DIR is required");
  const std::filesystem::path out = args.get("out");
  int train = args.get_int("train", 1000), test = args.get_int("test", 200);
  if (args.has("count")) {
    MMF_CHECK(!args.has("train"), Error, "make-dataset: give --count N (split 4:1) or --train N, not both");
    const int count = args.get_int("count", 0);
    MMF_CHECK(count >= 0, Error, "make-dataset: --count must be >= 0, got ", count);
    test = args.has("test") ? test : count / 5;
    MMF_CHECK(test <= count, Error, "make-dataset: --test ", test, " is more than --count ", count);
    train = count - test;
  }
  const int size = args.get_int("size", 64), seed = args.get_int("seed", 1);
  MMF_CHECK(train >= 0 && test >= 0 && train + test <= 99999, Error,
            "make-dataset: need 0 <= --train, --test and train + test <= 99999, got ", train, " and ", test);
  MMF_CHECK(size >= 8 && size <= 4096, Error, "make-dataset: --size must be in [8, 4096], got ", size);

  if (kind == "scenes") {
    std::vector<std::string> folders(datasets::kSceneModalityNames,
                                     datasets::kSceneModalityNames + datasets::kSceneModalities);
    folders.push_back("label");
    create_folders(out, folders);
    datasets::SceneSpec spec;
    spec.width = spec.height = size;
    // Samples are pure functions of (seed, index): render and write them on every core.
    auto write_sample = [&](int i) {
      const std::string file = sample_file(i);
      const datasets::SceneImages s = datasets::make_scene_images(spec, static_cast<uint64_t>(seed), i);
      for (int m = 0; m < datasets::kSceneModalities; ++m)
        datasets::write_png((out / datasets::kSceneModalityNames[m] / file).string(), s.modality(m));
      datasets::write_png((out / "label" / file).string(), s.label);
    };
    parallel_for(train + test, write_sample);
    for (auto [all_name, name, first, count] :
         {std::tuple{"train_all.txt", "train.txt", 0, train}, std::tuple{"test_all.txt", "test.txt", train, test}}) {
      std::string all_lines, lines;
      for (int i = first; i < first + count; ++i) {
        const std::string file = sample_file(i);
        for (int m = 0; m < datasets::kSceneModalities; ++m)
          all_lines += std::string(datasets::kSceneModalityNames[m]) + "/" + file + ' ';
        all_lines += "label/" + file + '\n';
        lines += "rgb/" + file + " depth/" + file + " label/" + file + '\n';
      }
      write_text(out, all_name, all_lines);
      write_text(out, name, lines);
    }
  } else {
    datasets::SyntheticRgbdSpec spec;
    spec.height = spec.width = size;
    std::vector<std::string> folders = {"rgb", "depth"};
    if (!classification) folders.push_back("label");
    create_folders(out, folders);
    for (auto [name, first, count] : {std::tuple{"train.txt", 0, train}, std::tuple{"test.txt", train, test}}) {
      std::string lines;
      for (int i = first; i < first + count; ++i) {
        const std::string file = sample_file(i);
        datasets::SyntheticRgbdSample s = classification ? datasets::make_synthetic_rgbd_cls(spec, seed, i)
                                                         : datasets::make_synthetic_rgbd(spec, seed, i);
        datasets::write_png((out / "rgb" / file).string(), s.rgb);
        datasets::write_png((out / "depth" / file).string(), s.depth);
        lines += "rgb/" + file + " depth/" + file + ' ';
        if (classification) {
          lines += std::to_string(s.class_index) + '\n';
        } else {
          datasets::write_png((out / "label" / file).string(), s.label);
          lines += "label/" + file + '\n';
        }
      }
      write_text(out, name, lines);
    }
  }
  std::printf("make-dataset: wrote %d training and %d test samples (%dx%d, seed %d) of %s to %s\n", train, test,
              size, size, seed, kind.c_str(), out.string().c_str());
  return 0;
}

CommandRegistrar registrar({"make-dataset", "write a generated dataset (synthetic RGB-D, rendered scenes) as PNG files and lists",
                            kUsage, make_dataset});

}  // namespace
}  // namespace mmfuse::tools
