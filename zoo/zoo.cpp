#include "zoo/zoo.h"

#include <sstream>

#include "base/error.h"
#include "zoo/writer.h"

namespace mmfuse::zoo {

namespace {

// ---- building blocks ------------------------------------------------------------------------

struct Builder {
  Proto p;
  int modalities = 1;     // of the fusion layers
  int bn_modalities = 1;  // of BatchNorm (1: shared statistics and affine)
  bool frozen_bn = false;
  std::string prefix;  // parameter-name prefix for separate streams ("" = plain layer names)
  double lr_mult = 1;  // written into the params of the layers built while it is set

  std::string param_specs(int count) const {
    if (lr_mult == 1) return "";
    std::string out;
    for (int i = 0; i < count; ++i) out += "param { lr_mult: " + fmt(lr_mult) + " }\n";
    return out;
  }

  std::string n(const std::string& s) const { return prefix + s; }

  std::string conv(const std::string& name, const std::string& bottom, int out, int k, int stride, int pad,
                   bool bias, const std::string& top = "") {
    std::string t = top.empty() ? n(name) : top;
    std::ostringstream body;
    body << param_specs(bias ? 2 : 1);
    body << "convolution_param { num_output: " << out << " kernel_size: " << k;
    if (pad) body << " pad: " << pad;
    if (stride != 1) body << " stride: " << stride;
    if (!bias) body << " bias_term: false";
    body << " }";
    p.layer(n(name), "Convolution", {bottom}, {t}, body.str());
    return t;
  }
  // Modality-specific BatchNorm with its affine part, in place.
  void bn(const std::string& name, const std::string& blob) {
    std::ostringstream body;
    body << "batch_norm_param { affine: true";
    if (bn_modalities > 1) body << " modalities: " << bn_modalities;
    // Statistics trained here, in short runs: a running average over the last ~10 batches
    // (PyTorch's momentum 0.1), not Caffe's 0.999, which at 1,000 iterations still weighs the
    // first batches' statistics almost as much as the last ones'.
    if (frozen_bn) body << " use_global_stats: true";
    else body << " moving_average_fraction: 0.9";
    body << " }";
    p.layer(n(name), "BatchNorm", {blob}, {blob}, body.str());
  }
  void relu(const std::string& name, const std::string& blob) { p.layer(n(name), "ReLU", {blob}, {blob}); }
  std::string add(const std::string& name, const std::string& a, const std::string& b) {
    p.layer(n(name), "Eltwise", {a, b}, {n(name)});
    return n(name);
  }
  std::string max_pool(const std::string& name, const std::string& bottom, int k, int stride, int pad) {
    std::ostringstream body;
    body << "pooling_param { pool: MAX kernel_size: " << k << " stride: " << stride;
    if (pad) body << " pad: " << pad;
    body << " round_mode: FLOOR }";  // PyTorch's output size
    p.layer(n(name), "Pooling", {bottom}, {n(name)}, body.str());
    return n(name);
  }
  std::string channel_shuffle(const std::string& name, const std::string& bottom) {
    p.layer(n(name), "ChannelShuffle", {bottom}, {n(name)},
            "channel_shuffle_param { modalities: " + std::to_string(modalities) + " }");
    return n(name);
  }
  std::string pixel_shift(const std::string& name, const std::string& y, const std::string& a) {
    p.layer(n(name), "PixelShift", {y, a}, {n(name)},
            "pixel_shift_param { modalities: " + std::to_string(modalities) + " }");
    return n(name);
  }
  std::string interp(const std::string& name, const std::string& bottom, const std::string& reference,
                     bool align_corners) {
    p.layer(n(name), "Interp", {bottom, reference}, {n(name)},
            std::string("interp_param { align_corners: ") + (align_corners ? "true" : "false") + " }");
    return n(name);
  }
  void dropout(const std::string& name, const std::string& blob, double ratio) {
    p.layer(n(name), "Dropout", {blob}, {blob}, "dropout_param { dropout_ratio: " + fmt(ratio) + " }");
  }
};

struct FusionOptions {
  bool channel_shuffle = false, pixel_shift = false;
};

// torchvision ResNet v1.5 bottleneck (stride on the 3x3 conv); with fusion, the AsymFusion
// block: A = ReLU(BN1(conv1 x)); Z = CS(A); B = ReLU(BN2(conv2 Z)) + swap(PS(A));
// C = CS(B); out = ReLU(BN3(conv3 C) + x).
std::string bottleneck_block(Builder& b, const std::string& name, const std::string& x, int in, int planes, int stride,
                       FusionOptions fusion) {
  std::string a = b.conv(name + ".conv1", x, planes, 1, 1, 0, false);
  b.bn(name + ".bn1", a);
  b.relu(name + ".relu1", a);
  std::string z = fusion.channel_shuffle ? b.channel_shuffle(name + ".shuffle1", a) : a;
  std::string y = b.conv(name + ".conv2", z, planes, 3, stride, 1, false);
  b.bn(name + ".bn2", y);
  b.relu(name + ".relu2", y);
  if (fusion.pixel_shift) y = b.pixel_shift(name + ".shift", y, a);
  if (fusion.channel_shuffle) y = b.channel_shuffle(name + ".shuffle2", y);
  std::string c = b.conv(name + ".conv3", y, planes * 4, 1, 1, 0, false);
  b.bn(name + ".bn3", c);
  std::string shortcut = x;
  if (stride != 1 || in != planes * 4) {
    shortcut = b.conv(name + ".downsample.0", x, planes * 4, 1, stride, 0, false);
    b.bn(name + ".downsample.1", shortcut);
  }
  std::string out = b.add(name + ".add", c, shortcut);
  b.relu(name + ".relu3", out);
  return out;
}

// torchvision basic block; with fusion: A = ReLU(BN1(conv1 x)); B = BN2(conv2 CS(A)) +
// swap(PS(A)); out = ReLU(B + x).
std::string basic_block(Builder& b, const std::string& name, const std::string& x, int in, int planes, int stride,
                        FusionOptions fusion) {
  std::string a = b.conv(name + ".conv1", x, planes, 3, stride, 1, false);
  b.bn(name + ".bn1", a);
  b.relu(name + ".relu1", a);
  std::string z = fusion.channel_shuffle ? b.channel_shuffle(name + ".shuffle1", a) : a;
  std::string y = b.conv(name + ".conv2", z, planes, 3, 1, 1, false);
  b.bn(name + ".bn2", y);
  if (fusion.pixel_shift) y = b.pixel_shift(name + ".shift", y, a);
  std::string shortcut = x;
  if (stride != 1 || in != planes) {
    shortcut = b.conv(name + ".downsample.0", x, planes, 1, stride, 0, false);
    b.bn(name + ".downsample.1", shortcut);
  }
  std::string out = b.add(name + ".add", y, shortcut);
  b.relu(name + ".relu2", out);
  return out;
}

std::vector<int> resnet_blocks(int depth, bool* bottleneck_out) {
  switch (depth) {
    case 18: *bottleneck_out = false; return {2, 2, 2, 2};
    case 34: *bottleneck_out = false; return {3, 4, 6, 3};
    case 50: *bottleneck_out = true; return {3, 4, 6, 3};
    case 101: *bottleneck_out = true; return {3, 4, 23, 3};
    case 152: *bottleneck_out = true; return {3, 8, 36, 3};
  }
  throw Error("zoo: ResNet depth " + std::to_string(depth) + " is not one of 18, 34, 50, 101, 152");
}

bool contains(const std::vector<int>& v, int x) {
  for (int y : v)
    if (y == x) return true;
  return false;
}

struct EncoderOut {
  std::vector<std::string> stages;
  std::vector<int> channels;
};

struct ResNet {
  std::vector<int> blocks;
  bool bottleneck = true;
  int width = 64;
  bool small_input = false;  // 3x3 stride-1 stem, no max pooling (28x28 and 64x64 inputs)
  std::vector<int> fusion_stages;
  FusionOptions fusion;

  int channels = 0;  // of the last output

  std::string stem(Builder& b, const std::string& input) {
    std::string x = b.conv("conv1", input, width, small_input ? 3 : 7, small_input ? 1 : 2, small_input ? 1 : 3, false);
    b.bn("bn1", x);
    b.relu("relu", x);
    if (!small_input) x = b.max_pool("maxpool", x, 3, 2, 1);
    channels = width;
    return x;
  }
  // Stage s in 1..4.
  std::string stage(Builder& b, int s, std::string x) {
    int planes = width << (s - 1);
    int stride = s == 1 ? 1 : 2;
    int n = blocks[s - 1];
    for (int i = 0; i < n; ++i) {
      std::string name = "layer" + std::to_string(s) + "." + std::to_string(i);
      // AsymFusion fuses the last block of a stage, never a stage's first block.
      bool fused = i == n - 1 && i > 0 && contains(fusion_stages, s);
      FusionOptions f = fused ? fusion : FusionOptions{};
      x = bottleneck ? bottleneck_block(b, name, x, channels, planes, i == 0 ? stride : 1, f)
                     : basic_block(b, name, x, channels, planes, i == 0 ? stride : 1, f);
      channels = bottleneck ? planes * 4 : planes;
    }
    return x;
  }
  EncoderOut encode(Builder& b, const std::string& input) {
    EncoderOut out;
    std::string x = stem(b, input);
    for (int s = 1; s <= 4; ++s) {
      x = stage(b, s, x);
      out.stages.push_back(x);
      out.channels.push_back(channels);
    }
    return out;
  }
};

// RefineNet decoder pieces (the CEN/AsymFusion code: every conv 3x3).
std::string rcu(Builder& b, const std::string& name, std::string x, int channels, int blocks) {
  for (int i = 0; i < blocks; ++i) {
    std::string block = name + "." + std::to_string(i);
    std::string r = x;
    b.p.layer(b.n(block + ".relu1"), "ReLU", {x}, {b.n(block + ".relu1")});
    std::string y = b.conv(block + ".conv1", b.n(block + ".relu1"), channels, 3, 1, 1, true);
    b.relu(block + ".relu2", y);
    y = b.conv(block + ".conv2", y, channels, 3, 1, 1, false);
    x = b.add(block + ".add", y, r);
  }
  return x;
}

std::string crp(Builder& b, const std::string& name, std::string x, int channels, int stages) {
  std::string top = x;
  for (int i = 0; i < stages; ++i) {
    std::string stage = name + "." + std::to_string(i);
    std::ostringstream pool;
    pool << "pooling_param { pool: MAX kernel_size: 5 stride: 1 pad: 2 }";
    b.p.layer(b.n(stage + ".pool"), "Pooling", {top}, {b.n(stage + ".pool")}, pool.str());
    top = b.conv(stage + ".conv", b.n(stage + ".pool"), channels, 3, 1, 1, false);
    x = b.add(stage + ".add", top, x);
  }
  return x;
}

// Returns the logits blob (1/4 resolution for the standard stem).
std::string refinenet_decoder(Builder& b, const EncoderOut& enc, int w, int classes) {
  std::string l1 = enc.stages[0], l2 = enc.stages[1], l3 = enc.stages[2], l4 = enc.stages[3];
  b.dropout("dropout_l4", l4, 0.5);
  b.dropout("dropout_l3", l3, 0.5);
  // g1 (from l4, width 2w)
  std::string x = b.conv("dec.l4_dimred", l4, 2 * w, 3, 1, 1, false);
  x = rcu(b, "dec.g1_adapt", x, 2 * w, 2);
  b.p.layer(b.n("dec.g1_relu"), "ReLU", {x}, {b.n("dec.g1_relu")});
  x = crp(b, "dec.g1_crp", b.n("dec.g1_relu"), 2 * w, 4);
  x = rcu(b, "dec.g1_out", x, 2 * w, 3);
  x = b.conv("dec.g1_dimred", x, w, 3, 1, 1, false);
  std::string up = b.interp("dec.g1_up", x, l3, true);
  // g2..g4
  const std::string laterals[3] = {l3, l2, l1};
  const std::string next[3] = {l2, l1, ""};
  for (int g = 2; g <= 4; ++g) {
    std::string gname = "dec.g" + std::to_string(g);
    std::string y = b.conv(gname + "_dimred_in", laterals[g - 2], w, 3, 1, 1, false);
    y = rcu(b, gname + "_adapt", y, w, 2);
    y = b.conv(gname + "_adapt_dimred", y, w, 3, 1, 1, false);
    y = b.add(gname + "_sum", y, up);
    b.relu(gname + "_relu", y);
    y = crp(b, gname + "_crp", y, w, 4);
    y = rcu(b, gname + "_out", y, w, 3);
    if (g < 4) {
      y = b.conv(gname + "_dimred", y, w, 3, 1, 1, false);
      up = b.interp(gname + "_up", y, next[g - 2], true);
    } else {
      b.dropout("dec.dropout_out", y, 0.5);
      return b.conv("clf_conv", y, classes, 3, 1, 1, true, b.n("logits"));
    }
  }
  return "";
}

// ---- data layers ---------------------------------------------------------------------------

std::string segmentation_data(const SegmentationSpec& s, bool stacked) {
  std::ostringstream os;
  if (s.dataset == Dataset::nyudv2) {
    for (int phase = 0; phase < 2; ++phase) {
      bool train = phase == 0;
      os << "layer {\n  name: \"data\"\n  type: \"MultimodalImageData\"\n";
      if (stacked) os << "  top: \"data\"\n";
      else os << "  top: \"rgb\"\n  top: \"depth\"\n";
      os << "  top: \"label\"\n  include { phase: " << (train ? "TRAIN" : "TEST") << " }\n";
      os << "  multimodal_data_param {\n    source: \"data/nyudv2/" << (train ? "train" : "test") << ".txt\"\n";
      os << "    batch_size: " << (train ? s.batch : 1) << "\n    num_classes: " << s.classes
         << "\n    ignore_label: 255\n";
      if (!stacked) os << "    stacked: false\n";
      if (!train) os << "    shuffle: false\n";
      os << "    modality { name: \"rgb\" channels: 3 scale: 0.00392156862745 mean: 0.485 mean: 0.456 mean: 0.406 "
            "std: 0.229 std: 0.224 std: 0.225 }\n";
      os << "    modality { name: \"depth\" channels: 1 replicate: 3 scale: 0.0002 interpolation: NEAREST }\n";
      if (train)
        os << "    augmentation { scale_min: 0.5 scale_max: 2.0 min_short_side: 350 crop_height: " << s.crop
           << " crop_width: " << s.crop << " mirror: true }\n";
      os << "  }\n}\n";
    }
  } else if (s.dataset == Dataset::scenes) {
    for (int phase = 0; phase < 2; ++phase) {
      bool train = phase == 0;
      os << "layer {\n  name: \"data\"\n  type: \"SceneData\"\n";
      if (stacked) os << "  top: \"data\"\n";
      else os << "  top: \"rgb\"\n  top: \"depth\"\n";
      os << "  top: \"label\"\n  include { phase: " << (train ? "TRAIN" : "TEST") << " }\n";
      os << "  scene_param { batch_size: " << s.batch << " size: " << s.crop
         << (train ? " seed: 1" : " seed: 1000003 num_samples: 256") << " modality: \"rgb\" modality: \"depth\""
         << (stacked ? " stacked: true" : "") << (train ? " mirror: true" : "") << " }\n}\n";
    }
  } else {
    for (int phase = 0; phase < 2; ++phase) {
      bool train = phase == 0;
      os << "layer {\n  name: \"data\"\n  type: \"SyntheticRgbdData\"\n";
      if (stacked) os << "  top: \"data\"\n";
      else os << "  top: \"rgb\"\n  top: \"depth\"\n";
      os << "  top: \"label\"\n  include { phase: " << (train ? "TRAIN" : "TEST") << " }\n";
      os << "  synthetic_rgbd_param { batch_size: " << s.batch << " size: " << s.crop
         << (train ? " seed: 1" : " seed: 1000003 num_samples: 256") << (stacked ? "" : " stacked: false")
         << (train ? " mirror: true" : "") << " }\n}\n";
    }
  }
  return os.str();
}

// Losses (TRAIN and TEST) and metrics (TEST) for stacked logits at 1/4 resolution.
void segmentation_heads(Builder& b, const std::string& logits, int modalities, bool ensemble, int classes) {
  std::string up = b.interp("logits_up", logits, "label", false);
  std::string m = std::to_string(modalities);
  std::string loss_param = "loss_param { ignore_label: 255" + (modalities > 1 ? " modalities: " + m : "") + " }";
  b.p.layer("loss", "SoftmaxWithLoss", {up, "label"}, {"loss"}, loss_param);
  std::string metric = "segmentation_metric_param { num_classes: " + std::to_string(classes) +
                       " ignore_label: 255" + (modalities > 1 ? " modalities: " + m : "") + " }";
  b.p.layer("metrics", "SegmentationMetric", {up, "label"}, {modalities > 1 ? "branch_metrics" : "metrics"},
            "include { phase: TEST }\n" + metric);
  if (ensemble && modalities > 1) {
    b.p.layer("ensemble", "ModalityEnsemble", {logits}, {"ensemble"},
              b.param_specs(1) + "modality_ensemble_param { modalities: " + m + " }");
    std::string eup = b.interp("ensemble_up", "ensemble", "label", false);
    b.p.layer("loss_ensemble", "SoftmaxWithLoss", {eup, "label"}, {"loss_ensemble"},
              "loss_param { ignore_label: 255 }");
    b.p.layer("ensemble_metrics", "SegmentationMetric", {eup, "label"}, {"ensemble_metrics"},
              "include { phase: TEST }\nsegmentation_metric_param { num_classes: " + std::to_string(classes) +
                  " ignore_label: 255 }");
  }
}

std::string header(const std::string& name, const std::string& what) {
  return "# " + what + "\n# Generated by `mmfuse zoo` (zoo/zoo.cpp): edit the generator, not this file.\nname: " +
         q(name) + "\n";
}

}  // namespace

namespace {

ResNet make_resnet(const SegmentationSpec& s) {
  ResNet r;
  r.bottleneck = s.bottleneck;
  r.blocks = s.blocks.empty() ? resnet_blocks(s.depth, &r.bottleneck) : s.blocks;
  r.width = s.width;
  r.fusion_stages = s.fusion_stages;
  r.fusion = {s.channel_shuffle && s.modalities > 1, s.pixel_shift && s.modalities > 1};
  return r;
}

std::string describe(const SegmentationSpec& s) {
  std::ostringstream os;
  if (s.blocks.empty()) os << "ResNet-" << s.depth;
  else {
    os << "ResNet (" << (s.bottleneck ? "bottleneck" : "basic") << " blocks";
    for (int b : s.blocks) os << " " << b;
    os << ", width " << s.width << ")";
  }
  os << "-RefineNet (width " << s.decoder_width << "), " << s.classes << " classes";
  return os.str();
}

}  // namespace

namespace {
// The flags of `mmfuse zoo` name the fields; an out-of-range value never reaches the generator.
void check_positive(int v, const char* flag) {
  MMF_CHECK(v > 0, Error, "zoo: --", flag, " must be positive, got ", v);
}
void check_stages(const std::vector<int>& stages, const char* what) {
  for (size_t i = 0; i < stages.size(); ++i) {
    MMF_CHECK(stages[i] >= 1 && stages[i] <= 4, Error, "zoo: --stages ", stages[i], " is out of range (", what,
              " go after stages 1 to 4)");
    for (size_t j = 0; j < i; ++j) MMF_CHECK(stages[j] != stages[i], Error, "zoo: --stages lists ", stages[i], " twice");
  }
}
void check_blocks(const std::vector<int>& blocks) {
  MMF_CHECK(blocks.size() == 4, Error, "zoo: --blocks takes four block counts (one per ResNet stage), got ",
            blocks.size());
  for (int b : blocks) check_positive(b, "blocks");
}
}  // namespace

void check_spec(const SegmentationSpec& s) {
  if (s.blocks.empty()) {
    bool bottleneck = false;
    resnet_blocks(s.depth, &bottleneck);
  } else {
    check_blocks(s.blocks);
  }
  check_positive(s.width, "width");
  check_positive(s.decoder_width, "decoder-width");
  check_positive(s.modalities, "modalities");
  MMF_CHECK(s.classes >= 2, Error, "zoo: --classes must be at least 2, got ", s.classes);
  check_positive(s.batch, "batch");
  MMF_CHECK(s.crop >= 32, Error, "zoo: --crop must be at least 32 (the encoder's stride), got ", s.crop);
  check_stages(s.fusion_stages, "fusion blocks");
}

void check_spec(const MmtmSpec& s) {
  check_blocks(s.blocks);
  check_positive(s.width, "width");
  MMF_CHECK(s.classes >= 2, Error, "zoo: --classes must be at least 2, got ", s.classes);
  check_positive(s.batch, "batch");
  check_stages(s.mmtm_stages, "MMTM modules");
}

std::string asymfusion_net(const SegmentationSpec& s) {
  check_spec(s);
  Builder b;
  b.modalities = s.modalities;
  b.bn_modalities = s.private_bn ? s.modalities : 1;
  b.frozen_bn = s.frozen_bn;
  ResNet resnet = make_resnet(s);
  std::string fusion = resnet.fusion.channel_shuffle && resnet.fusion.pixel_shift ? "channel shuffle and pixel shift"
                       : resnet.fusion.channel_shuffle                             ? "channel shuffle"
                       : resnet.fusion.pixel_shift                                 ? "pixel shift"
                                                                                   : "no explicit fusion";
  std::string stages;
  for (int st : s.fusion_stages) {
    if (!stages.empty()) stages += ",";
    stages += std::to_string(st);
  }
  b.p.raw(header(s.name, "AsymFusion-style shared network over " + std::to_string(s.modalities) +
                             " modality-stacked inputs: " + describe(s) + ";\n# " +
                             (s.private_bn ? "modality-specific" : "shared") + " BatchNorm" +
                             (s.frozen_bn ? " (frozen statistics)" : "") + ", " + fusion +
                             (fusion == "no explicit fusion" ? "" : " in the last block of stages " + stages) +
                             (s.ensemble && s.modalities > 1 ? ", learned ensemble of the modality logits." : ".")));
  b.p.raw(segmentation_data(s, true));
  EncoderOut enc = resnet.encode(b, "data");
  b.lr_mult = s.decoder_lr_mult;  // the decoder (and the ensemble weights) learn faster
  std::string logits = refinenet_decoder(b, enc, s.decoder_width, s.classes);
  segmentation_heads(b, logits, s.modalities, s.ensemble, s.classes);
  return b.p.str();
}

std::string baseline_net(Baseline kind, SegmentationSpec s) {
  check_spec(s);
  if (kind == Baseline::shared_private_bn || kind == Baseline::shared_shared_bn) {
    s.channel_shuffle = s.pixel_shift = false;
    s.private_bn = kind == Baseline::shared_private_bn;
    return asymfusion_net(s);
  }
  Builder b;
  b.frozen_bn = s.frozen_bn;
  SegmentationSpec single = s;
  single.modalities = 1;
  ResNet resnet = make_resnet(single);
  const char* what = kind == Baseline::rgb_only      ? "RGB only"
                     : kind == Baseline::depth_only  ? "depth only"
                     : kind == Baseline::early_fusion ? "early fusion (RGB and depth concatenated as input channels)"
                                                      : "late fusion (two separate networks, logits summed)";
  b.p.raw(header(s.name, std::string("Baseline, ") + what + ": " + describe(s) + "."));
  b.p.raw(segmentation_data(s, false));
  std::string logits;
  if (kind == Baseline::rgb_only || kind == Baseline::depth_only) {
    bool rgb = kind == Baseline::rgb_only;
    b.p.layer("silence", "Silence", {rgb ? "depth" : "rgb"}, {});
    logits = refinenet_decoder(b, resnet.encode(b, rgb ? "rgb" : "depth"), s.decoder_width, s.classes);
  } else if (kind == Baseline::early_fusion) {
    b.p.layer("input_concat", "Concat", {"rgb", "depth"}, {"rgbd"}, "concat_param { axis: 1 }");
    logits = refinenet_decoder(b, resnet.encode(b, "rgbd"), s.decoder_width, s.classes);
  } else {
    std::string branch_logits[2];
    const char* inputs[2] = {"rgb", "depth"};
    for (int m = 0; m < 2; ++m) {
      b.prefix = std::string(inputs[m]) + ".";
      ResNet r = make_resnet(single);
      branch_logits[m] = refinenet_decoder(b, r.encode(b, inputs[m]), s.decoder_width, s.classes);
    }
    b.prefix = "";
    logits = b.add("logits_sum", branch_logits[0], branch_logits[1]);
  }
  segmentation_heads(b, logits, 1, false, s.classes);
  return b.p.str();
}

std::string mmtm_net(const MmtmSpec& s) {
  check_spec(s);
  Builder b;
  bool fmnist = s.dataset == Dataset::fmnist_two_view;
  std::string names[2] = {fmnist ? "view1" : "rgb", fmnist ? "view2" : "depth"};
  std::ostringstream what;
  what << "MMTM: two ResNet streams (" << (s.blocks == std::vector<int>{2, 2, 2, 2} ? "ResNet-18" : "ResNet")
       << ", width " << s.width << ", each its own weights) joined by MMTM after stages";
  for (int st : s.mmtm_stages) what << " " << st;
  what << "; a classifier per stream, loss = sum of the two, prediction = sum of the logits.";
  b.p.raw(header(s.name, what.str()));
  for (int phase = 0; phase < 2; ++phase) {
    bool train = phase == 0;
    std::ostringstream os;
    if (fmnist) {
      os << "layer {\n  name: \"data\"\n  type: \"FashionMnistData\"\n  top: \"view1\"\n  top: \"view2\"\n"
         << "  top: \"label\"\n  include { phase: " << (train ? "TRAIN" : "TEST") << " }\n"
         << "  fashion_mnist_param { train: " << (train ? "true" : "false") << " two_view: true batch_size: " << s.batch
         << (train ? "" : " shuffle: false") << " }\n}\n";
    } else if (s.dataset == Dataset::scenes_cls) {
      os << "layer {\n  name: \"data\"\n  type: \"SceneData\"\n  top: \"rgb\"\n  top: \"depth\"\n"
         << "  top: \"label\"\n  include { phase: " << (train ? "TRAIN" : "TEST") << " }\n"
         << "  scene_param { classification: true modality: \"rgb\" modality: \"depth\" batch_size: " << s.batch
         << (train ? " seed: 1" : " seed: 1000003 num_samples: 512") << " }\n}\n";
    } else {
      os << "layer {\n  name: \"data\"\n  type: \"SyntheticRgbdData\"\n  top: \"rgb\"\n  top: \"depth\"\n"
         << "  top: \"label\"\n  include { phase: " << (train ? "TRAIN" : "TEST") << " }\n"
         << "  synthetic_rgbd_param { classification: true stacked: false batch_size: " << s.batch
         << (train ? " seed: 1" : " seed: 1000003 num_samples: 512") << " }\n}\n";
    }
    b.p.raw(os.str());
  }
  ResNet streams[2];
  std::string x[2];
  for (int m = 0; m < 2; ++m) {
    streams[m].blocks = s.blocks;
    streams[m].bottleneck = false;
    streams[m].width = s.width;
    streams[m].small_input = s.small_input;
    b.prefix = names[m] + ".";
    x[m] = streams[m].stem(b, names[m]);
  }
  for (int st = 1; st <= 4; ++st) {
    for (int m = 0; m < 2; ++m) {
      b.prefix = names[m] + ".";
      x[m] = streams[m].stage(b, st, x[m]);
    }
    b.prefix = "";
    if (contains(s.mmtm_stages, st)) {
      std::string name = "mmtm" + std::to_string(st);
      b.p.layer(name, "MMTM", {x[0], x[1]}, {name + "." + names[0], name + "." + names[1]});
      x[0] = name + "." + names[0];
      x[1] = name + "." + names[1];
    }
  }
  std::string logits[2];
  for (int m = 0; m < 2; ++m) {
    b.prefix = names[m] + ".";
    b.p.layer(b.n("avgpool"), "Pooling", {x[m]}, {b.n("avgpool")}, "pooling_param { pool: AVE global_pooling: true }");
    logits[m] = b.n("fc");
    b.p.layer(b.n("fc"), "InnerProduct", {b.n("avgpool")}, {logits[m]},
              "inner_product_param { num_output: " + std::to_string(s.classes) + " }");
    b.prefix = "";
    b.p.layer("loss_" + names[m], "SoftmaxWithLoss", {logits[m], "label"}, {"loss_" + names[m]});
    b.p.layer("accuracy_" + names[m], "Accuracy", {logits[m], "label"}, {"accuracy_" + names[m]},
              "include { phase: TEST }");
  }
  b.p.layer("logits_sum", "Eltwise", {logits[0], logits[1]}, {"logits_sum"});
  b.p.layer("accuracy", "Accuracy", {"logits_sum", "label"}, {"accuracy"}, "include { phase: TEST }");
  return b.p.str();
}

namespace {

// Solver text; `net` is relative to the solver's folder.
std::string solver(const std::string& net, const std::string& what, const std::string& body) {
  return "# " + what + "\n# Generated by `mmfuse zoo` (zoo/zoo.cpp).\nnet: " + q(net) + "\n" + body;
}

SegmentationSpec nyudv2(int depth) {
  SegmentationSpec s;
  s.depth = depth;
  s.name = "asymfusion_nyudv2_resnet" + std::to_string(depth);
  return s;
}

}  // namespace

MmtmSpec mmtm_preset(Dataset dataset) {
  MmtmSpec s;
  s.dataset = dataset;
  if (dataset == Dataset::fmnist_two_view) {
    s.in_channels = {1, 1};
  } else if (dataset == Dataset::synthetic_cls || dataset == Dataset::scenes_cls) {
    s.width = 16;
    s.small_input = false;  // 64x64 images: the standard stem (stride 4) keeps a CPU run short
    s.classes = dataset == Dataset::scenes_cls ? 5 : 6;  // datasets::kSceneObjectClasses
    s.batch = 32;
  } else {
    throw Error("zoo mmtm: the MMTM presets are for fmnist-two-view, synthetic-cls and scenes-cls");
  }
  return s;
}

SegmentationSpec synthetic_segmentation() {
  SegmentationSpec s;
  s.depth = 0;
  s.blocks = {2, 2, 2, 2};
  s.bottleneck = true;
  s.width = 16;
  s.decoder_width = 32;
  s.frozen_bn = false;  // trained from scratch: no ImageNet statistics to freeze
  s.decoder_lr_mult = 1;
  s.classes = 7;
  s.dataset = Dataset::synthetic;
  s.batch = 8;
  s.crop = 64;
  s.name = "asymfusion_synthetic";
  return s;
}

SegmentationSpec scenes_segmentation() {
  SegmentationSpec s = synthetic_segmentation();
  s.classes = 8;  // datasets::kSceneClasses (zoo/ depends on base/ only)
  s.dataset = Dataset::scenes;
  s.name = "asymfusion_scenes";
  return s;
}

std::map<std::string, std::string> committed_models() {
  std::map<std::string, std::string> files;
  // AsymFusion on NYUDv2 (the paper's configuration).
  files["models/asymfusion/nyudv2_resnet101.prototxt"] = asymfusion_net(nyudv2(101));
  files["models/asymfusion/nyudv2_resnet152.prototxt"] = asymfusion_net(nyudv2(152));
  // 795 training images / batch 6 = 132 iterations an epoch; 3 x 100 epochs (ResNet-101).
  // Encoder lr 5e-4 (x1, x0.5, x0.2), decoder x6 through lr_mult on the decoder layers.
  files["models/asymfusion/nyudv2_solver.prototxt"] = solver(
      "nyudv2_resnet101.prototxt",
      "AsymFusion ResNet-101 on NYUDv2: the schedule of the official code.\n"
      "# Start from ImageNet-pretrained weights, as the paper does (docs/interop.md):\n"
      "#   /usr/bin/python3 scripts/convert-torchvision-resnet --arch resnet101 --modalities 2 resnet101_m2.weights\n"
      "#   mmfuse train --solver models/asymfusion/nyudv2_solver.prototxt --weights resnet101_m2.weights",
      "type: \"SGD\"\nbase_lr: 0.0005\nmomentum: 0.9\nweight_decay: 0.00001\nlr_policy: \"multistep\"\n"
      "stepvalue: 13200\nstepvalue: 26400\nstep_factor: 0.5\nstep_factor: 0.2\nmax_iter: 39600\n"
      "test_iter: 654\ntest_interval: 660\ndisplay: 20\naverage_loss: 20\n"
      "snapshot: 6600\nsnapshot_prefix: \"snapshots/asymfusion_nyudv2_resnet101\"\nrandom_seed: 42\n");
  // The small model on the embedded synthetic RGB-D set: the README's main job.
  SegmentationSpec syn = synthetic_segmentation();
  files["models/asymfusion/synthetic.prototxt"] = asymfusion_net(syn);
  const std::string synthetic_solver_body =
      "type: \"Adam\"\nbase_lr: 0.002\nmomentum: 0.9\nmomentum2: 0.999\nweight_decay: 0.00001\n"
      "lr_policy: \"cosine\"\nwarmup_iter: 50\nclip_gradients: 10\nmax_iter: 800\ntest_iter: 32\n"
      "test_interval: 200\ndisplay: 20\naverage_loss: 20\nsnapshot: 400\nrandom_seed: 1\nsolver_mode: CPU\n";
  files["models/asymfusion/synthetic_solver.prototxt"] =
      solver("synthetic.prototxt", "AsymFusion on the synthetic RGB-D set (the README's main job).",
             synthetic_solver_body + "snapshot_prefix: \"snapshots/asymfusion_synthetic\"\n");
  // Baselines on the synthetic set, same encoder/decoder size.
  const std::pair<Baseline, std::string> baselines[] = {
      {Baseline::rgb_only, "rgb_only"},           {Baseline::depth_only, "depth_only"},
      {Baseline::early_fusion, "early_fusion"},   {Baseline::late_fusion, "late_fusion"},
      {Baseline::shared_private_bn, "shared_private_bn"}, {Baseline::shared_shared_bn, "shared_shared_bn"}};
  for (const auto& [kind, name] : baselines) {
    SegmentationSpec b = syn;
    b.name = "baseline_synthetic_" + name;
    files["models/baselines/synthetic_" + name + ".prototxt"] = baseline_net(kind, b);
    files["models/baselines/synthetic_" + name + "_solver.prototxt"] =
        solver("synthetic_" + name + ".prototxt", "Baseline " + name + " on the synthetic RGB-D set.",
               synthetic_solver_body + "snapshot_prefix: \"snapshots/baseline_synthetic_" + name + "\"\n");
  }
  // The same models on the rendered scenes (RGB + depth -> 8 classes), same solver.
  SegmentationSpec scn = scenes_segmentation();
  files["models/asymfusion/scenes.prototxt"] = asymfusion_net(scn);
  files["models/asymfusion/scenes_solver.prototxt"] =
      solver("scenes.prototxt", "AsymFusion on the rendered scenes (SceneData, RGB + depth, 8 classes).",
             synthetic_solver_body + "snapshot_prefix: \"snapshots/asymfusion_scenes\"\n");
  for (const auto& [kind, name] : baselines) {
    if (kind == Baseline::shared_private_bn || kind == Baseline::shared_shared_bn) continue;
    SegmentationSpec b = scn;
    b.name = "baseline_scenes_" + name;
    files["models/baselines/scenes_" + name + ".prototxt"] = baseline_net(kind, b);
    files["models/baselines/scenes_" + name + "_solver.prototxt"] =
        solver("scenes_" + name + ".prototxt", "Baseline " + name + " on the rendered scenes.",
               synthetic_solver_body + "snapshot_prefix: \"snapshots/baseline_scenes_" + name + "\"\n");
  }
  // MMTM.
  MmtmSpec fm = mmtm_preset(Dataset::fmnist_two_view);
  fm.name = "mmtm_fmnist_two_view";
  files["models/mmtm/fmnist_two_view.prototxt"] = mmtm_net(fm);
  files["models/mmtm/fmnist_two_view_solver.prototxt"] =
      solver("fmnist_two_view.prototxt", "MMTM over two ResNet-18 streams on two-view Fashion-MNIST.",
             "type: \"SGD\"\nbase_lr: 0.05\nmomentum: 0.9\nweight_decay: 0.0005\nlr_policy: \"cosine\"\n"
             "warmup_iter: 100\nmax_iter: 3000\ntest_iter: 157\ntest_interval: 1000\ndisplay: 50\n"
             "average_loss: 50\nsnapshot: 1000\nsnapshot_prefix: \"snapshots/mmtm_fmnist_two_view\"\n"
             "random_seed: 1\n");
  // The same at width 16 and batch 40 (250 test batches are the 10,000 test images): CPU-sized.
  MmtmSpec fs = fm;
  fs.width = 16;
  fs.batch = 40;
  fs.name = "mmtm_fmnist_two_view_small";
  files["models/mmtm/fmnist_two_view_small.prototxt"] = mmtm_net(fs);
  files["models/mmtm/fmnist_two_view_small_solver.prototxt"] =
      solver("fmnist_two_view_small.prototxt",
             "MMTM over two small ResNet-18 streams (width 16) on two-view Fashion-MNIST, sized for a CPU.",
             "type: \"SGD\"\nbase_lr: 0.05\nmomentum: 0.9\nweight_decay: 0.0005\nlr_policy: \"cosine\"\n"
             "warmup_iter: 100\nmax_iter: 1200\ntest_iter: 250\ntest_interval: 600\ndisplay: 50\n"
             "average_loss: 50\nsnapshot: 1200\nsnapshot_prefix: \"snapshots/mmtm_fmnist_two_view_small\"\n"
             "random_seed: 1\nsolver_mode: CPU\n");
  MmtmSpec sc = mmtm_preset(Dataset::synthetic_cls);
  sc.name = "mmtm_synthetic_cls";
  files["models/mmtm/synthetic_cls.prototxt"] = mmtm_net(sc);
  const std::string cls_solver_body =
      "type: \"SGD\"\nbase_lr: 0.05\nmomentum: 0.9\nweight_decay: 0.0005\nlr_policy: \"cosine\"\n"
      "warmup_iter: 50\nmax_iter: 600\ntest_iter: 16\ntest_interval: 200\ndisplay: 20\n"
      "average_loss: 20\nsnapshot: 600\n";
  files["models/mmtm/synthetic_cls_solver.prototxt"] =
      solver("synthetic_cls.prototxt", "MMTM over two small ResNet-18 streams on synthetic RGB-D classification.",
             cls_solver_body + "snapshot_prefix: \"snapshots/mmtm_synthetic_cls\"\nrandom_seed: 1\nsolver_mode: CPU\n");
  MmtmSpec scls = mmtm_preset(Dataset::scenes_cls);
  scls.name = "mmtm_scenes_cls";
  files["models/mmtm/scenes_cls.prototxt"] = mmtm_net(scls);
  files["models/mmtm/scenes_cls_solver.prototxt"] =
      solver("scenes_cls.prototxt",
             "MMTM over two small ResNet-18 streams on the rendered scenes' classification variant.",
             cls_solver_body + "snapshot_prefix: \"snapshots/mmtm_scenes_cls\"\nrandom_seed: 1\nsolver_mode: CPU\n");
  files.merge(translation_models());
  return files;
}

}  // namespace mmfuse::zoo
