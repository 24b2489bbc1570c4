// `mmfuse make-dataset`: writes a generated dataset to disk in the layout users' real data has
// (PNG files per modality plus list files), so that the file-based data path can be exercised
// and inspected without any download.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/error.h"
#include "datasets/image.h"
#include "datasets/synthetic_rgbd.h"
#include "tools/command.h"

namespace mmfuse::tools {
namespace {

const char* kUsage =
    "mmfuse make-dataset synthetic-rgbd     --out DIR [--train N] [--test N] [--size S] [--seed K]\n"
    "mmfuse make-dataset synthetic-rgbd-cls --out DIR [--train N] [--test N] [--size S] [--seed K]\n"
    "\n"
    "Writes DIR/rgb/NNNNN.png (8-bit RGB), DIR/depth/NNNNN.png (16-bit gray, millimetres, 0 = hole)\n"
    "and DIR/train.txt, DIR/test.txt (one sample per line, paths relative to DIR).\n"
    "synthetic-rgbd (segmentation) also writes DIR/label/NNNNN.png (8-bit class map, 7 classes) and\n"
    "list lines 'rgb/00000.png depth/00000.png label/00000.png'; synthetic-rgbd-cls (one object per\n"
    "image, 6 classes = 2 * appearance + geometry) lists 'rgb/00000.png depth/00000.png 3'.\n"
    "Samples 0..N-1 of the seed are the training set, N..N+M-1 the test set.\n"
    "Defaults: --train 1000 --test 200 --size 64 --seed 1. See docs/datasets.md.";

int make_dataset(const std::vector<std::string>& argv) {
  Args args("make-dataset", argv, {"out", "train", "test", "size", "seed"});
  MMF_CHECK(args.positional().size() == 1, Error,
            "make-dataset: name one dataset: synthetic-rgbd or synthetic-rgbd-cls (see `mmfuse help make-dataset`)");
  const std::string kind = args.positional()[0];
  MMF_CHECK(kind == "synthetic-rgbd" || kind == "synthetic-rgbd-cls", Error, "make-dataset: unknown dataset '",
            kind, "' (known: synthetic-rgbd, synthetic-rgbd-cls)");
  const bool classification = kind == "synthetic-rgbd-cls";
  MMF_CHECK(args.has("out"), Error, "make-dataset: --out DIR is required");
  const std::filesystem::path out = args.get("out");
  const int train = args.get_int("train", 1000), test = args.get_int("test", 200), size = args.get_int("size", 64);
  const int seed = args.get_int("seed", 1);
  MMF_CHECK(train >= 0 && test >= 0 && train + test <= 99999, Error,
            "make-dataset: need 0 <= --train, --test and train + test <= 99999, got ", train, " and ", test);
  MMF_CHECK(size >= 8 && size <= 4096, Error, "make-dataset: --size must be in [8, 4096], got ", size);

  datasets::SyntheticRgbdSpec spec;
  spec.height = spec.width = size;
  std::vector<std::string> folders = {"rgb", "depth"};
  if (!classification) folders.push_back("label");
  for (const auto& f : folders) {
    std::error_code ec;
    std::filesystem::create_directories(out / f, ec);
    MMF_CHECK(!ec, IOError, "make-dataset: cannot create '", (out / f).string(), "': ", ec.message());
  }
  auto write_split = [&](const char* list_name, int first, int count) {
    std::filesystem::path list_path = out / list_name;
    std::ofstream list(list_path);
    MMF_CHECK(list, IOError, "make-dataset: cannot write '", list_path.string(), "'");
    for (int i = first; i < first + count; ++i) {
      char name[16];
      std::snprintf(name, sizeof name, "%05d.png", i);
      datasets::SyntheticRgbdSample s = classification ? datasets::make_synthetic_rgbd_cls(spec, seed, i)
                                                       : datasets::make_synthetic_rgbd(spec, seed, i);
      datasets::write_png((out / "rgb" / name).string(), s.rgb);
      datasets::write_png((out / "depth" / name).string(), s.depth);
      list << "rgb/" << name << " depth/" << name << ' ';
      if (classification) {
        list << s.class_index << '\n';
      } else {
        datasets::write_png((out / "label" / name).string(), s.label);
        list << "label/" << name << '\n';
      }
    }
    list.close();
    MMF_CHECK(list, IOError, "make-dataset: cannot write '", list_path.string(), "'");
  };
  write_split("train.txt", 0, train);
  write_split("test.txt", train, test);
  std::printf("make-dataset: wrote %d training and %d test samples (%dx%d, seed %d) of %s to %s\n", train, test,
              size, size, seed, kind.c_str(), out.string().c_str());
  return 0;
}

CommandRegistrar registrar({"make-dataset", "write a generated dataset (synthetic RGB-D) as PNG files and lists",
                            kUsage, make_dataset});

}  // namespace
}  // namespace mmfuse::tools
