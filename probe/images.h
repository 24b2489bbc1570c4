// The feature images of `mmfuse probe`: for the first samples of the first test batch, each
// modality's input, its feature maps before and after every fusion layer (a row of channels
// spread evenly over C, each scaled to its own range), and the predictions beside the ground
// truth. Internal to probe/ (collect.cpp calls these from its forward hooks).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/net.h"
#include "probe/net_map.h"
#include "probe/probe.h"

namespace mmfuse::probe {

// A row of up to `channels` maps of sample `n` of x [B, C, H, W] (or [B, C]), spread over C,
// each normalised to its own range, through a perceptual colour map; small maps are enlarged.
Image feature_grid(const Tensor& x, int64_t n, int channels);
// Sample `n` of x [B, C, H, W] as a picture: 3 channels as RGB, otherwise the first channel
// through the colour map; normalised to the sample's range.
Image picture(const Tensor& x, int64_t n);
// A label map [H, W] (class indices; out of range: black) in a fixed palette.
Image label_picture(const std::vector<double>& labels, int64_t height, int64_t width);

void add_input_images(const NetMap& map, const TensorList& data_tops, const ProbeOptions& options,
                      std::vector<FeatureImage>& images);
void add_fusion_images(const Net& net, const NetMap& map, size_t layer, const TensorList& tops,
                       const ProbeOptions& options, std::vector<FeatureImage>& images);
void add_prediction_images(const Net& net, const NetMap& map, const std::map<std::string, Tensor>& blobs,
                           const std::vector<double>& class_labels, const ProbeOptions& options,
                           std::vector<FeatureImage>& images);

}  // namespace mmfuse::probe
