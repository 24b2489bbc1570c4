// The model zoo generator: ResNet encoders (basic and bottleneck blocks, modality-specific
// BatchNorm, AsymFusion's channel shuffle and pixel shift in the last block of chosen stages),
// the RefineNet decoder of the AsymFusion/CEN code, MMTM two-stream classifiers and the
// baselines, written as prototxt. Part of the library (tests/training/test_zoo.cpp calls it directly);
// the command line is tools/zoo.cpp: `mmfuse zoo` writes every committed network under models/,
// `mmfuse zoo asymfusion|mmtm|baseline ...` prints one network for an ablation.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace mmfuse::zoo {

enum class Dataset { nyudv2, synthetic, synthetic_cls, fmnist_two_view, scenes, scenes_cls };

struct SegmentationSpec {
  int depth = 101;                  // 18, 34, 50, 101, 152, or 0 with explicit `blocks`
  std::vector<int> blocks;          // blocks per stage (overrides depth)
  bool bottleneck = true;           // overrides depth's block type when blocks is set
  int width = 64;                   // channels of the stem and of layer1's bottleneck
  int decoder_width = 256;          // RefineNet width (512 for the l4 branch = 2x this)
  double decoder_lr_mult = 6;       // decoder lr / encoder lr (3e-3 / 5e-4 in the paper)
  int modalities = 2;
  std::vector<int> fusion_stages = {1, 2, 3, 4};  // stages whose last block fuses
  bool channel_shuffle = true;
  bool pixel_shift = true;
  bool private_bn = true;           // false: one BN shared by all modalities
  bool frozen_bn = true;            // use_global_stats (the AsymFusion default)
  bool ensemble = true;
  int classes = 40;
  Dataset dataset = Dataset::nyudv2;
  int batch = 6;
  int crop = 500;
  std::string name = "asymfusion";
};

// Whole networks as prototxt text.
std::string asymfusion_net(const SegmentationSpec& spec);

enum class Baseline { rgb_only, depth_only, early_fusion, late_fusion, shared_private_bn, shared_shared_bn };
std::string baseline_net(Baseline kind, SegmentationSpec spec);

struct MmtmSpec;
// Error naming the `mmfuse zoo` flag of the first field out of range (the generators call it).
void check_spec(const SegmentationSpec& s);
void check_spec(const MmtmSpec& s);

struct MmtmSpec {
  std::vector<int> blocks = {2, 2, 2, 2};  // ResNet-18
  int width = 64;
  std::vector<int> mmtm_stages = {2, 3, 4};  // MMTM after these stages
  std::vector<int> in_channels = {3, 1};
  int classes = 10;
  Dataset dataset = Dataset::fmnist_two_view;
  bool small_input = true;  // 3x3 stride-1 stem without max pooling (28x28 and 64x64 inputs)
  int batch = 64;
  std::string name = "mmtm";
};
std::string mmtm_net(const MmtmSpec& spec);

// The small configuration of the synthetic RGB-D set (the main job).
SegmentationSpec synthetic_segmentation();
// The same model on the rendered scenes (SceneData, RGB + depth, 8 classes).
SegmentationSpec scenes_segmentation();
// MMTM's configuration for a dataset (fmnist-two-view: two 1-channel views, 10 classes, width 64;
// synthetic-cls: RGB + depth, 6 classes, width 16, standard stem, batch 32; scenes-cls: the same
// on the rendered scenes' classification variant, 5 classes).
MmtmSpec mmtm_preset(Dataset dataset);

// models/translation/ (zoo/translation.cpp): the pix2pix-style translation generators
// (AsymFusion, single-modality, early and late fusion) with their PatchGAN discriminator and
// adversarial solvers.
std::map<std::string, std::string> translation_models();

// Every committed file of models/ (path relative to the repository root -> content).
std::map<std::string, std::string> committed_models();

}  // namespace mmfuse::zoo
