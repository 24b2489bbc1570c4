// models/translation/: multimodal image-to-image translation on the rendered scenes
// (`mmfuse make-dataset scenes --out data/scenes`), the second task of AsymFusion. The
// generator is the pix2pix U-Net (4x4 stride-2 convolutions, LeakyReLU 0.2 down, ReLU up, skip
// concatenation, dropout 0.5 in the innermost up block, Tanh) of the CEN/AsymFusion translation
// code; the discriminator is pix2pix's conditional 70x70 PatchGAN on (condition, image) pairs.
// The data: `mmfuse make-dataset scenes --out data/scenes` (1,000 training and 200 test scenes
// of 64x64); a run of 400 iterations of batch 4 takes a few minutes on a CPU.
// Variants of a pair of input modalities (docs/translation.md):
//   asymfusion  one U-Net over the modality-stacked batch [2N, 3, H, W]: shared convolutions,
//               private InstanceNorm per modality, channel shuffle + pixel shift at the
//               fusion stages of the encoder; each branch predicts the target, and the learned
//               ModalityEnsemble combines the two predictions;
//   single_<m>  one modality in, the same U-Net (modalities 1);
//   early       the two modalities concatenated on channels into one U-Net;
//   late        two U-Nets (separate weights), one per modality, outputs averaged.
#include <algorithm>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "zoo/writer.h"
#include "zoo/zoo.h"

namespace mmfuse::zoo {

namespace {

enum class Variant { asymfusion, single, early, late };

struct TranslationSpec {
  std::string name;                 // the net's name and file stem
  std::vector<std::string> inputs;  // scene modality names (one for single)
  Variant variant = Variant::asymfusion;
  int ngf = 16;                     // generator width of the first level
  int levels = 5;                   // encoder levels: 64 -> 2 pixels at the innermost
  std::vector<int> fusion_stages = {2, 3};
  int batch = 4;
  int size = 64;
};

const char* const kSceneModalities[] = {"rgb", "depth", "normal", "shading", "albedo", "edges"};

// The normalisation of a scene modality to about [-1, 1] (Tanh's range for the target).
std::string modality_param(const std::string& m) {
  if (m == "depth")  // 16-bit millimetres: 0..8 m -> [-1, 1]
    return "modality { name: \"depth\" channels: 1 replicate: 3 scale: 0.00025 mean: 1 mean: 1 mean: 1 std: 1 std: 1 "
           "std: 1 }";
  bool grey = m == "shading" || m == "edges";
  std::string s = "modality { name: " + q(m) + " channels: " + (grey ? "1 replicate: 3" : "3") + " scale: 0.00392156862745";
  return s + " mean: 0.5 mean: 0.5 mean: 0.5 std: 0.5 std: 0.5 std: 0.5 }";
}

// The scenes' full lists (six modalities, then the label) for TRAIN and TEST; the modalities the
// net does not use go to a Silence layer.
void scene_data(Proto& p, const TranslationSpec& s) {
  for (int phase = 0; phase < 2; ++phase) {
    bool train = phase == 0;
    std::string body = std::string("include { phase: ") + (train ? "TRAIN" : "TEST") + " }\nmultimodal_data_param {\n" +
                       "  source: \"data/scenes/" + (train ? "train" : "test") + "_all.txt\"\n  batch_size: " +
                       std::to_string(s.batch) + "\n  num_classes: 8\n  stacked: false\n" +
                       (train ? "" : "  shuffle: false\n");
    for (const char* m : kSceneModalities) body += "  " + modality_param(m) + "\n";
    body += "}";
    std::vector<std::string> tops(std::begin(kSceneModalities), std::end(kSceneModalities));
    tops.push_back("label");
    p.layer("data", "MultimodalImageData", {}, tops, body);
  }
  std::vector<std::string> unused;
  for (const char* m : kSceneModalities) {
    bool used = std::string(m) == "rgb";
    for (const auto& i : s.inputs) used = used || i == m;
    if (!used) unused.push_back(m);
  }
  unused.push_back("label");
  p.layer("unused", "Silence", unused, {});
}

struct UNet {
  Proto& p;
  std::string prefix;  // layer names (late fusion: one per generator)
  int modalities = 1;  // of InstanceNorm and the fusion layers

  std::string n(const std::string& s) const { return prefix + s; }
  static std::string filler() { return "weight_filler { type: \"gaussian\" std: 0.02 }"; }
  std::string conv(const std::string& name, const std::string& bottom, int out, int stride, const char* type = "Convolution") {
    p.layer(n(name), type, {bottom}, {n(name)},
            "convolution_param { num_output: " + std::to_string(out) + " kernel_size: 4 stride: " +
                std::to_string(stride) + " pad: 1 " + filler() + " }");
    return n(name);
  }
  void norm(const std::string& name, const std::string& blob) {
    p.layer(n(name), "InstanceNorm", {blob}, {blob},
            modalities > 1 ? "instance_norm_param { modalities: " + std::to_string(modalities) + " }" : "");
  }
  std::string act(const std::string& name, const std::string& bottom, double slope) {
    p.layer(n(name), "ReLU", {bottom}, {n(name)}, slope != 0 ? "relu_param { negative_slope: " + fmt(slope) + " }" : "");
    return n(name);
  }

  // pix2pix's U-Net over `input` with `in_channels`, returning the Tanh output blob.
  std::string build(const std::string& input, int out_channels, const TranslationSpec& s) {
    std::vector<int> width;
    for (int k = 0; k < s.levels; ++k) width.push_back(s.ngf * (1 << std::min(k, 3)));
    std::vector<std::string> enc;
    enc.push_back(conv("down1", input, width[0], 2));  // outermost: no norm
    for (int k = 2; k <= s.levels; ++k) {
      std::string l = "down" + std::to_string(k);
      std::string e = conv(l, act(l + ".act", enc.back(), 0.2), width[static_cast<size_t>(k - 1)], 2);
      if (k < s.levels) {  // innermost: no norm (a 2x2 map)
        norm(l + ".norm", e);
        bool fuse = modalities > 1 && std::find(s.fusion_stages.begin(), s.fusion_stages.end(), k) != s.fusion_stages.end();
        if (fuse) {  // AsymFusion: shuffle channels, add the other modality's shifted features
          p.layer(n(l + ".shuffle"), "ChannelShuffle", {e}, {n(l + ".shuffle")},
                  "channel_shuffle_param { modalities: " + std::to_string(modalities) + " }");
          p.layer(n(l + ".shift"), "PixelShift", {n(l + ".shuffle"), e}, {n(l + ".shift")},
                  "pixel_shift_param { modalities: " + std::to_string(modalities) + " }");
          e = n(l + ".shift");
        }
      }
      enc.push_back(e);
    }
    std::string d = enc.back();
    for (int k = s.levels; k >= 2; --k) {
      std::string l = "up" + std::to_string(k);
      std::string u = conv(l, act(l + ".act", d, 0), width[static_cast<size_t>(k - 2)], 2, "Deconvolution");
      norm(l + ".norm", u);
      if (k == s.levels) p.layer(n(l + ".drop"), "Dropout", {u}, {u}, "dropout_param { dropout_ratio: 0.5 }");
      p.layer(n(l + ".skip"), "Concat", {u, enc[static_cast<size_t>(k - 2)]}, {n(l + ".skip")});
      d = n(l + ".skip");
    }
    std::string out = conv("up1", act("up1.act", d, 0), out_channels, 2, "Deconvolution");
    p.layer(n("tanh"), "TanH", {out}, {n("output")});
    return n("output");
  }
};

// L1 (weight 100, pix2pix's lambda) against the RGB target, and the test metrics.
void head(Proto& p, const std::string& fake) {
  p.layer("l1_" + fake, "L1Loss", {fake, "rgb"}, {"l1_" + fake}, "loss_weight: 100");
  p.layer("metrics_" + fake, "ImageMetric", {fake, "rgb"},
          {fake + "_l1", fake + "_rmse", fake + "_psnr", fake + "_ssim"}, "include { phase: TEST }");
}

std::string header(const std::string& name, const std::string& what) {
  return "# " + what + "\n# Generated by `mmfuse zoo` (zoo/translation.cpp): edit the generator, not this file.\nname: " +
         q(name) + "\n";
}

// The generator net and the list of blobs D judges.
std::string generator_net(const TranslationSpec& s, std::vector<std::string>& fakes) {
  Proto p;
  scene_data(p, s);
  const std::string& a = s.inputs[0];
  std::string what;
  if (s.variant == Variant::single) {
    what = "pix2pix U-Net, " + a + " -> rgb (single modality)";
    p.layer("condition", "Split", {a}, {"condition"});
    UNet u{p, "", 1};
    p.layer("fake", "Split", {u.build(a, 3, s)}, {"fake"});
    fakes = {"fake"};
  } else {
    const std::string& b = s.inputs[1];
    p.layer("condition", "Concat", {a, b}, {"condition"});
    if (s.variant == Variant::early) {
      what = "pix2pix U-Net, " + a + " + " + b + " -> rgb (early fusion: channels concatenated)";
      UNet u{p, "", 1};
      p.layer("fake", "Split", {u.build("condition", 3, s)}, {"fake"});
      fakes = {"fake"};
    } else if (s.variant == Variant::late) {
      what = "two pix2pix U-Nets, " + a + " -> rgb and " + b + " -> rgb, outputs averaged (late fusion)";
      UNet ua{p, a + ".", 1}, ub{p, b + ".", 1};
      std::string oa = ua.build(a, 3, s), ob = ub.build(b, 3, s);
      p.layer("fake", "Eltwise", {oa, ob}, {"fake"}, "eltwise_param { operation: SUM coeff: 0.5 coeff: 0.5 }");
      fakes = {"fake"};
    } else {
      what = "AsymFusion pix2pix U-Net, " + a + " + " + b +
             " -> rgb (shared convolutions, private InstanceNorm, channel shuffle + pixel shift, ensemble)";
      p.layer("stack", "ModalityStack", {a, b}, {"input"});
      UNet u{p, "", 2};
      std::string out = u.build("input", 3, s);
      p.layer("branches", "ModalitySplit", {out}, {"fake_" + a, "fake_" + b});
      p.layer("ensemble", "ModalityEnsemble", {out}, {"fake_ensemble"}, "modality_ensemble_param { modalities: 2 }");
      fakes = {"fake_" + a, "fake_" + b, "fake_ensemble"};
    }
  }
  for (const auto& f : fakes) head(p, f);
  // The condition is the discriminator's (the solver reads it from the forward's blobs).
  p.layer("condition_to_solver", "Silence", {"condition"}, {});
  return header(s.name, what) + p.str();
}

// pix2pix's conditional PatchGAN (n_layers 3, 70x70 receptive field): a map of patch logits.
std::string discriminator_net(int condition_channels, const TranslationSpec& s, int ndf = 16) {
  Proto p;
  auto shape = [&](int c) {
    return "shape { dim: " + std::to_string(s.batch) + " dim: " + std::to_string(c) + " dim: " + std::to_string(s.size) +
           " dim: " + std::to_string(s.size) + " }";
  };
  p.layer("input", "Input", {}, {"condition", "image"},
          "input_param { " + shape(condition_channels) + " " + shape(3) + " }");
  p.layer("pair", "Concat", {"condition", "image"}, {"pair"});
  std::string x = "pair";
  const int widths[] = {ndf, 2 * ndf, 4 * ndf, 8 * ndf, 1};
  for (int k = 0; k < 5; ++k) {
    std::string l = "conv" + std::to_string(k + 1);
    p.layer(l, "Convolution", {x}, {k == 4 ? std::string("patch") : l},
            "convolution_param { num_output: " + std::to_string(widths[k]) + " kernel_size: 4 stride: " +
                (k < 3 ? "2" : "1") + " pad: 1 weight_filler { type: \"gaussian\" std: 0.02 } }");
    if (k == 4) break;
    if (k > 0) p.layer(l + ".norm", "InstanceNorm", {l}, {l});
    p.layer(l + ".act", "ReLU", {l}, {l}, "relu_param { negative_slope: 0.2 }");
    x = l;
  }
  return header("patchgan_c" + std::to_string(condition_channels),
                "pix2pix conditional PatchGAN (70x70) on (condition with " + std::to_string(condition_channels) +
                    " channels, RGB image) pairs") +
         p.str();
}

std::string solver_text(const TranslationSpec& s, const std::string& discriminator, const std::vector<std::string>& fakes) {
  std::string t = "# Adversarial training (pix2pix: Adam 2e-4, beta1 0.5, L1 x 100 + LSGAN) of " + s.name +
                  ".\n# Generated by `mmfuse zoo` (zoo/translation.cpp).\n";
  t += "player { name: \"generator\" net: " + q(s.name + ".prototxt") + " test_iter: 50 }\n";
  t += "player { name: \"discriminator\" net: " + q(discriminator) + " }\n";
  t += "adversarial {\n  gan_mode: LSGAN\n  gan_weight: 1\n";
  for (const auto& f : fakes) t += "  fake: " + q(f) + "\n";
  t += "  real: \"rgb\"\n  condition: \"condition\"\n";
  for (const auto& i : s.inputs) t += "  grid: " + q(i) + "\n";
  for (const auto& f : fakes) t += "  grid: " + q(f) + "\n";
  t += "  grid: \"rgb\"\n}\n";
  t += "type: \"Adam\"\nbase_lr: 0.0002\nmomentum: 0.5\nmomentum2: 0.999\nlr_policy: \"fixed\"\nmax_iter: 400\n"
       "test_interval: 400\ntest_initialization: false\ndisplay: 50\naverage_loss: 50\nsnapshot: 400\nsnapshot_prefix: \"snapshots/translation_" +
       s.name + "\"\nrandom_seed: 1\nsolver_mode: CPU\n";
  return t;
}

}  // namespace

std::map<std::string, std::string> translation_models() {
  std::map<std::string, std::string> files;
  const std::string dir = "models/translation/";
  TranslationSpec base;
  files[dir + "discriminator_c3.prototxt"] = discriminator_net(3, base);
  files[dir + "discriminator_c6.prototxt"] = discriminator_net(6, base);
  const std::pair<std::string, std::vector<std::string>> pairs[] = {{"shade_texture", {"shading", "albedo"}},
                                                                    {"depth_normal", {"depth", "normal"}}};
  for (const auto& [pair, inputs] : pairs) {
    std::vector<TranslationSpec> specs;
    for (auto [variant, suffix] : {std::pair{Variant::asymfusion, "asymfusion"}, std::pair{Variant::early, "early_fusion"},
                                   std::pair{Variant::late, "late_fusion"}}) {
      TranslationSpec s = base;
      s.variant = variant;
      s.inputs = inputs;
      s.name = pair + "_" + suffix;
      specs.push_back(s);
    }
    for (const auto& m : inputs) {
      TranslationSpec s = base;
      s.variant = Variant::single;
      s.inputs = {m};
      s.name = pair + "_single_" + m;
      specs.push_back(s);
    }
    for (const auto& s : specs) {
      std::vector<std::string> fakes;
      files[dir + s.name + ".prototxt"] = generator_net(s, fakes);
      files[dir + s.name + "_solver.prototxt"] =
          solver_text(s, s.variant == Variant::single ? "discriminator_c3.prototxt" : "discriminator_c6.prototxt", fakes);
    }
  }
  return files;
}

}  // namespace mmfuse::zoo
