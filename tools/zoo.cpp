// `mmfuse zoo`: writes (or checks) the generated networks under models/, or prints one
// network for an ablation.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "tools/command.h"
#include "zoo/zoo.h"

namespace mmfuse::tools {
namespace {

// --flag 1,2,3: a comma-separated list of integers ("" is the empty list).
std::vector<int> parse_list(const Args& args, const std::string& flag) {
  const std::string text = args.get(flag);
  std::vector<int> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) continue;
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    MMF_CHECK(used == item.size() && used > 0, Error, "zoo: --", flag,
              " expects a comma-separated list of integers, got '", text, "'");
    out.push_back(v);
  }
  return out;
}

zoo::Dataset parse_dataset(const std::string& name) {
  if (name == "nyudv2") return zoo::Dataset::nyudv2;
  if (name == "synthetic") return zoo::Dataset::synthetic;
  if (name == "synthetic-cls") return zoo::Dataset::synthetic_cls;
  if (name == "fmnist-two-view") return zoo::Dataset::fmnist_two_view;
  if (name == "scenes") return zoo::Dataset::scenes;
  if (name == "scenes-cls") return zoo::Dataset::scenes_cls;
  throw Error("zoo: unknown dataset '" + name +
              "' (nyudv2, synthetic, synthetic-cls, fmnist-two-view, scenes, scenes-cls)");
}

std::string read_file(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

int write_all(const std::string& root, bool check) {
  int stale = 0;
  for (const auto& [path, text] : zoo::committed_models()) {
    std::string full = root + "/" + path;
    bool ok = false;
    std::string current = read_file(full, &ok);
    if (check) {
      if (!ok || current != text) {
        std::printf("%s: %s\n", path.c_str(), ok ? "differs from the generator" : "missing");
        ++stale;
      }
      continue;
    }
    if (ok && current == text) continue;
    std::ofstream out(full, std::ios::binary);
    MMF_CHECK(out, IOError, full, ": cannot write (does the folder exist?)");
    out << text;
    std::printf("wrote %s\n", path.c_str());
  }
  if (check) std::printf(stale ? "%d generated file(s) out of date: run `mmfuse zoo`\n" : "all generated files up to date\n", stale);
  return stale ? 1 : 0;
}

int zoo_main(const std::vector<std::string>& argv) {
  std::vector<std::string> rest = argv;
  std::string family = !rest.empty() && rest[0].rfind("--", 0) != 0 ? rest[0] : "";
  if (!family.empty()) rest.erase(rest.begin());
  Args args("zoo", rest,
            {"root", "depth", "blocks", "width", "decoder-width", "modalities", "fusion", "stages", "bn",
             "classes", "dataset", "batch", "crop", "name"},
            {"check", "frozen-bn", "no-ensemble"});
  if (family.empty()) return write_all(args.get("root", "."), args.has("check"));

  if (family == "asymfusion" || family == "baseline") {
    const std::string dataset = args.get("dataset", "nyudv2");
    zoo::SegmentationSpec s = dataset == "synthetic" ? zoo::synthetic_segmentation()
                              : dataset == "scenes"  ? zoo::scenes_segmentation()
                                                     : zoo::SegmentationSpec{};
    if (args.has("dataset")) s.dataset = parse_dataset(args.get("dataset"));
    if (args.has("depth")) { s.depth = args.get_int("depth", 101); s.blocks.clear(); }
    if (args.has("blocks")) s.blocks = parse_list(args, "blocks");
    s.width = args.get_int("width", s.width);
    s.decoder_width = args.get_int("decoder-width", s.decoder_width);
    s.modalities = args.get_int("modalities", s.modalities);
    s.classes = args.get_int("classes", s.classes);
    s.batch = args.get_int("batch", s.batch);
    s.crop = args.get_int("crop", s.crop);
    if (args.has("stages")) s.fusion_stages = parse_list(args, "stages");
    if (args.has("fusion")) {
      std::string f = args.get("fusion");
      MMF_CHECK(f == "cs,ps" || f == "ps,cs" || f == "cs" || f == "ps" || f == "none", Error,
                "zoo: --fusion takes cs,ps | cs | ps | none, got '", f, "'");
      s.channel_shuffle = f.find("cs") != std::string::npos;
      s.pixel_shift = f.find("ps") != std::string::npos;
    }
    if (args.has("bn")) {
      MMF_CHECK(args.get("bn") == "private" || args.get("bn") == "shared", Error, "zoo: --bn takes private | shared");
      s.private_bn = args.get("bn") == "private";
    }
    if (args.has("frozen-bn")) s.frozen_bn = true;
    if (args.has("no-ensemble")) s.ensemble = false;
    s.name = args.get("name", s.name);
    if (family == "asymfusion") {
      std::fputs(zoo::asymfusion_net(s).c_str(), stdout);
      return 0;
    }
    MMF_CHECK(!args.positional().empty(), Error,
              "zoo baseline: name the baseline (rgb-only, depth-only, early-fusion, late-fusion, "
              "shared-private-bn, shared-shared-bn)");
    std::string kind = args.positional()[0];
    const std::pair<const char*, zoo::Baseline> kinds[] = {
        {"rgb-only", zoo::Baseline::rgb_only},         {"depth-only", zoo::Baseline::depth_only},
        {"early-fusion", zoo::Baseline::early_fusion}, {"late-fusion", zoo::Baseline::late_fusion},
        {"shared-private-bn", zoo::Baseline::shared_private_bn},
        {"shared-shared-bn", zoo::Baseline::shared_shared_bn}};
    for (const auto& [k, v] : kinds)
      if (kind == k) {
        std::fputs(zoo::baseline_net(v, s).c_str(), stdout);
        return 0;
      }
    throw Error("zoo baseline: unknown baseline '" + kind + "'");
  }
  if (family == "mmtm") {
    zoo::MmtmSpec s = zoo::mmtm_preset(parse_dataset(args.get("dataset", "fmnist-two-view")));
    if (args.has("blocks")) s.blocks = parse_list(args, "blocks");
    if (args.has("stages")) s.mmtm_stages = parse_list(args, "stages");
    s.width = args.get_int("width", s.width);
    s.classes = args.get_int("classes", s.classes);
    s.batch = args.get_int("batch", s.batch);
    s.name = args.get("name", s.name);
    std::fputs(zoo::mmtm_net(s).c_str(), stdout);
    return 0;
  }
  throw Error("zoo: unknown family '" + family + "' (asymfusion, baseline, mmtm)");
}

CommandRegistrar registrar({"zoo", "generate the model zoo's prototxt (models/) or one network for an ablation",
                            R"(mmfuse zoo [--root DIR] [--check]
    Writes every generated network and solver under DIR/models (default: the current folder),
    or with --check lists the files that differ from the generator (exit 1 if any).
mmfuse zoo asymfusion [--dataset nyudv2|synthetic|scenes] [--depth 18|34|50|101|152 | --blocks 2,2,2,2]
                      [--width 64] [--decoder-width 256] [--modalities 2] [--fusion cs,ps|cs|ps|none]
                      [--stages 1,2,3,4] [--bn private|shared] [--frozen-bn] [--no-ensemble]
                      [--classes 40] [--batch 6] [--crop 500] [--name NAME]
mmfuse zoo baseline rgb-only|depth-only|early-fusion|late-fusion|shared-private-bn|shared-shared-bn [same flags]
mmfuse zoo mmtm [--dataset fmnist-two-view|synthetic-cls|scenes-cls] [--blocks 2,2,2,2] [--stages 2,3,4] [--width 64]
                [--classes 10] [--batch 64]
    Print one network to standard output, e.g. an ablation:
      mmfuse zoo asymfusion --depth 101 --fusion cs --stages 3,4 > cs_only.prototxt
    --dataset synthetic starts from the main job's configuration, --dataset scenes from
    models/asymfusion/scenes (the same model on the rendered scenes, 8 classes), --dataset synthetic-cls
    from models/mmtm/synthetic_cls (width 16, 6 classes, batch 32), --dataset scenes-cls from
    models/mmtm/scenes_cls (the same, 5 classes); --stages "" fuses nowhere.)",
                            zoo_main});

}  // namespace
}  // namespace mmfuse::tools
