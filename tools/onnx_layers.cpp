// The ONNX form of each layer type (opset 13), one function per type, registered in the table at
// the end. Each reads its layer's prototxt fields and parameters and the static shapes the Net
// inferred, and writes standard operators only: the fusion layers become Slice / Concat / Pad /
// ReduceMean / Gemm / Sigmoid / Mul graphs (docs/interop.md, "ONNX export", says which).
// Modality-stacked blobs [M*N, ...] stay stacked: modality m is rows [m*N, (m+1)*N).
#include <cmath>

#include "core/cpu/fusion.h"  // pixel_shift_offset: the kernels' own direction table
#include "core/ops/fusion.h"  // channel_shuffle_kept
#include "core/ops/pool.h"    // pool_output_size
#include "layers/conv_params.h"
#include "tools/onnx_graph.h"

namespace mmfuse::tools::onnx_export {
namespace {

int64_t rank(const Shape& s) { return static_cast<int64_t>(s.size()); }
int64_t canonical(int64_t axis, int64_t nd) { return axis < 0 ? axis + nd : axis; }
std::vector<int64_t> range(int64_t begin, int64_t end) {
  std::vector<int64_t> r;
  for (int64_t i = begin; i < end; ++i) r.push_back(i);
  return r;
}
// Receivers of an exchange as a mask over the modalities (empty list: all).
template <typename List>
std::vector<bool> receiver_mask(const List& receivers, int64_t modalities) {
  std::vector<bool> mask(static_cast<size_t>(modalities), receivers.empty());
  for (auto r : receivers) mask.at(static_cast<size_t>(r)) = true;
  return mask;
}

// ---- Caffe's layers ---------------------------------------------------------------------------

void convolution(LayerExport& e, bool transposed) {
  const auto& p = e.param().convolution_param();
  auto fail = [&](auto&&... a) { e.unsupported(detail::concat(a...)); };
  layers::ConvGeometry c = layers::read_conv_geometry(p, e.bottom_shapes[0], fail);
  std::vector<std::string> inputs = {e.bottoms[0], e.weight(0)};
  if (p.bias_term()) inputs.push_back(e.weight(1));
  e.to_top(transposed ? "ConvTranspose" : "Conv", inputs,
           {Attr::ints("kernel_shape", {c.kernel_h, c.kernel_w}), Attr::ints("strides", {c.stride_h, c.stride_w}),
            Attr::ints("pads", {c.pad_h, c.pad_w, c.pad_h, c.pad_w}),
            Attr::ints("dilations", {c.dilation_h, c.dilation_w}), Attr::i("group", p.group())});
}

// ONNX's pooled size: floor or ceil((in + 2 pad - kernel) / stride) + 1, without PyTorch's
// (and Caffe's) rule that drops a last window starting in the right padding.
int64_t onnx_pool_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode) {
  int64_t span = in + 2 * pad - kernel;
  return (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
}

void pooling(LayerExport& e) {
  const auto& p = e.param().pooling_param();
  bool max = p.pool() == proto::PoolingParameter::MAX;
  if (p.global_pooling()) return e.to_top(max ? "GlobalMaxPool" : "GlobalAveragePool", {e.bottoms[0]});
  const Shape &x = e.bottom_shapes[0], &y = e.top_shapes[0];
  int64_t kh = p.has_kernel_h() ? p.kernel_h() : p.kernel_size();
  int64_t kw = p.has_kernel_w() ? p.kernel_w() : p.kernel_size();
  int64_t ph = p.has_pad_h() ? p.pad_h() : p.pad(), pw = p.has_pad_w() ? p.pad_w() : p.pad();
  int64_t sh = p.has_stride_h() ? p.stride_h() : p.stride(), sw = p.has_stride_w() ? p.stride_w() : p.stride();
  // ONNX's sizes have no rule dropping a last window that starts in the right padding (Caffe's
  // and PyTorch's CEIL): where that rule drops one, the layer's windows are exactly ONNX's
  // floor-mode ones. ceil_mode is the mode whose ONNX sizes are the ones the layer inferred.
  auto fits = [&](bool ceil) {
    return onnx_pool_size(x[2], kh, sh, ph, ceil) == y[2] && onnx_pool_size(x[3], kw, sw, pw, ceil) == y[3];
  };
  bool ceil_mode = p.round_mode() == proto::PoolingParameter::CEIL;
  if (!fits(ceil_mode)) ceil_mode = !ceil_mode;
  if (!fits(ceil_mode))
    e.unsupported("the pooled size " + shape_str(y) + " is ONNX's neither with ceil_mode 0 nor 1");
  std::vector<Attr> attrs = {Attr::ints("kernel_shape", {kh, kw}), Attr::ints("strides", {sh, sw}),
                             Attr::ints("pads", {ph, pw, ph, pw}), Attr::i("ceil_mode", ceil_mode ? 1 : 0)};
  if (!max) {
    // mmfuse divides by the window clipped to the padded input (count_include_pad). Without a
    // window past the padded input that is ONNX's count_include_pad = 1; with no padding, the
    // clipped window is the valid one, ONNX's count_include_pad = 0.
    bool overhang = (y[2] - 1) * sh + kh > x[2] + 2 * ph || (y[3] - 1) * sw + kw > x[3] + 2 * pw;
    if (overhang && (ph || pw))
      e.unsupported("average pooling with padding and a last window past the padded input (round_mode CEIL) "
                    "divides by a clipped window ONNX's AveragePool does not have");
    attrs.push_back(Attr::i("count_include_pad", overhang ? 0 : 1));
  }
  e.to_top(max ? "MaxPool" : "AveragePool", {e.bottoms[0]}, std::move(attrs));
}

void inner_product(LayerExport& e) {
  const auto& p = e.param().inner_product_param();
  const Shape &x = e.bottom_shapes[0], &y = e.top_shapes[0];
  int64_t axis = canonical(p.axis(), rank(x));
  int64_t outer = shape_numel(Shape(x.begin(), x.begin() + axis)), k = shape_numel(x) / outer;
  std::string flat =
      rank(x) == 2 && axis == 1 ? e.bottoms[0] : e.g.reshape(e.bottoms[0], {outer, k}, e.tops[0] + "_in");
  std::vector<std::string> inputs = {flat, e.weight(0)};
  if (p.bias_term()) inputs.push_back(e.weight(1));
  std::vector<Attr> attrs = {Attr::i("transB", p.transpose() ? 0 : 1)};
  if (rank(y) == 2) return e.to_top("Gemm", inputs, std::move(attrs));
  std::string out = e.g.op("Gemm", inputs, e.tops[0] + "_gemm", std::move(attrs));
  e.to_top("Reshape", {out, e.g.ints(e.tops[0] + "_shape", y)});
}

// Normalisation with parameters private to each modality: x as [M, N, C, rest] against
// [M, 1, C, 1] parameters (row m: modality m). With stats_at >= 0, parameters stats_at and
// stats_at + 1 are the mean and variance to normalise with; else `normalised` is already
// normalised. With affine_at >= 0, parameters affine_at and affine_at + 1 are gamma and beta.
void private_norm(LayerExport& e, int64_t m, float eps, int stats_at, int affine_at, const std::string& normalised = "") {
  const Shape& x = e.bottom_shapes[0];
  const int64_t c = x[1];
  Shape grouped = {m, x[0] / m, c, shape_numel(x) / (x[0] * c)}, param = {m, 1, c, 1};
  const std::string& t = e.tops[0];
  std::string y = e.g.reshape(stats_at >= 0 ? e.bottoms[0] : normalised, grouped, t + "_grouped");
  if (stats_at >= 0) {
    const size_t k = static_cast<size_t>(stats_at);
    std::string centred = e.g.op("Sub", {y, e.weight(k, param)}, t + "_centred");
    std::string var_eps = e.g.op("Add", {e.weight(k + 1, param), e.g.floats(t + "_eps", {eps}, {1})}, t + "_var_eps");
    y = e.g.op("Div", {centred, e.g.op("Sqrt", {var_eps}, t + "_std")}, t + "_normalised");
  }
  if (affine_at >= 0) {
    const size_t k = static_cast<size_t>(affine_at);
    std::string scaled = e.g.op("Mul", {y, e.weight(k, param)}, t + "_scaled");
    y = e.g.op("Add", {scaled, e.weight(k + 1, param)}, t + "_affine");
  }
  e.to_top("Reshape", {y, e.g.ints(t + "_shape", x)});
}

void batch_norm(LayerExport& e) {
  const auto& p = e.param().batch_norm_param();
  if (p.has_use_global_stats() && !p.use_global_stats())
    e.unsupported("use_global_stats: false normalises with each batch's statistics; the ONNX graph normalises with "
                  "the running statistics (inference)");
  const Shape& x = e.bottom_shapes[0];
  int64_t m = p.modalities(), c = x[1];
  if (m == 1) {
    std::string gamma = p.affine() ? e.weight(2) : e.g.floats(e.tops[0] + "_gamma", std::vector<float>(c, 1.f), {c});
    std::string beta = p.affine() ? e.weight(3) : e.g.floats(e.tops[0] + "_beta", std::vector<float>(c, 0.f), {c});
    return e.to_top("BatchNormalization", {e.bottoms[0], gamma, beta, e.weight(0), e.weight(1)},
                    {Attr::f("epsilon", p.eps())});
  }
  private_norm(e, m, p.eps(), 0, p.affine() ? 2 : -1);
}

// InstanceNorm (TEST phase): with running statistics the same graph as private BatchNorm; without,
// ONNX's InstanceNormalization with unit scale and zero shift, then the (per-modality) affine.
void instance_norm(LayerExport& e) {
  const auto& p = e.param().instance_norm_param();
  const int affine_at = p.affine() ? (p.track_running_stats() ? 2 : 0) : -1;
  if (p.track_running_stats()) return private_norm(e, p.modalities(), p.eps(), 0, affine_at);
  const int64_t c = e.bottom_shapes[0][1];
  const std::string& t = e.tops[0];
  std::string y = e.g.op("InstanceNormalization",
                         {e.bottoms[0], e.g.floats(t + "_unit", std::vector<float>(c, 1.f), {c}),
                          e.g.floats(t + "_zero", std::vector<float>(c, 0.f), {c})},
                         t + "_normalised", {Attr::f("epsilon", p.eps())});
  private_norm(e, p.modalities(), p.eps(), -1, affine_at, y);
}

void scale(LayerExport& e) {
  const auto& p = e.param().scale_param();
  const Shape& x = e.bottom_shapes[0];
  int64_t axis = canonical(p.axis(), rank(x));
  Shape gamma = e.bottoms.size() == 2
                    ? e.bottom_shapes[1]
                    : Shape(x.begin() + axis, p.num_axes() == -1 ? x.end() : x.begin() + axis + p.num_axes());
  // gamma's dims at `axis`, ones after: numpy broadcasting aligns the trailing dims.
  Shape b = gamma;
  for (int64_t d = axis + rank(gamma); d < rank(x); ++d) b.push_back(1);
  if (b.empty()) b = {1};
  size_t next = 0;
  std::string g = e.bottoms.size() == 2 ? e.g.reshape(e.bottoms[1], b, e.tops[0] + "_gamma") : e.weight(next++, b);
  if (!p.bias_term()) return e.to_top("Mul", {e.bottoms[0], g});
  e.to_top("Add", {e.g.op("Mul", {e.bottoms[0], g}, e.tops[0] + "_scaled"), e.weight(next, b)});
}

void eltwise(LayerExport& e) {
  const auto& p = e.param().eltwise_param();
  std::vector<std::string> terms = e.bottoms;
  if (p.operation() == proto::EltwiseParameter::PROD) {  // Mul is binary: a chain, left to right
    std::string product = terms[0];
    for (size_t i = 1; i + 1 < terms.size(); ++i) product = e.g.op("Mul", {product, terms[i]}, e.tops[0] + "_product");
    return e.to_top("Mul", {product, terms.back()});
  }
  if (p.operation() == proto::EltwiseParameter::MAX) return e.to_top("Max", terms);
  for (int i = 0; i < p.coeff_size() && i < static_cast<int>(terms.size()); ++i)
    if (p.coeff(i) != 1.f)
      terms[i] = e.g.op("Mul", {terms[i], e.g.floats(e.tops[0] + "_coeff", {p.coeff(i)}, {1})}, e.tops[0] + "_term");
  e.to_top("Sum", terms);
}

void concat(LayerExport& e) {
  const auto& p = e.param().concat_param();
  e.to_top("Concat", e.bottoms,
           {Attr::i("axis", canonical(p.has_concat_dim() ? p.concat_dim() : p.axis(), rank(e.bottom_shapes[0])))});
}

void slice(LayerExport& e) {
  const auto& p = e.param().slice_param();
  int64_t axis = canonical(p.has_slice_dim() ? p.slice_dim() : p.axis(), rank(e.bottom_shapes[0]));
  std::vector<int64_t> sizes;
  for (const auto& s : e.top_shapes) sizes.push_back(s[axis]);
  e.g.node("Split", {e.bottoms[0], e.g.ints(e.tops[0] + "_split", sizes)}, e.tops, {Attr::i("axis", axis)});
}

void identity(LayerExport& e) {
  for (const auto& top : e.tops) e.g.node("Identity", {e.bottoms[0]}, {top});
}

void reshape_to_top(LayerExport& e) {
  e.to_top("Reshape", {e.bottoms[0], e.g.ints(e.tops[0] + "_shape", e.top_shapes[0])});
}

void crop(LayerExport& e) {
  const auto& p = e.param().crop_param();
  const Shape &x = e.bottom_shapes[0], &y = e.top_shapes[0];
  int64_t axis = canonical(p.axis(), rank(x));
  std::vector<int64_t> starts, ends, axes;
  for (int64_t d = axis; d < rank(x); ++d) {
    int64_t i = d - axis;
    int64_t offset = p.offset_size() == 0 ? 0 : p.offset_size() == 1 ? p.offset(0) : p.offset(static_cast<int>(i));
    starts.push_back(offset);
    ends.push_back(offset + y[d]);
    axes.push_back(d);
  }
  const std::string& t = e.tops[0];
  e.to_top("Slice",
           {e.bottoms[0], e.g.ints(t + "_starts", starts), e.g.ints(t + "_ends", ends), e.g.ints(t + "_axes", axes)});
}

void interp(LayerExport& e) {
  const auto& p = e.param().interp_param();
  const Shape &x = e.bottom_shapes[0], &y = e.top_shapes[0];
  const std::string& t = e.tops[0];
  std::string in = e.bottoms[0];
  if (p.pad_beg() || p.pad_end())  // DeepLab's negative pads crop before resizing
    in = e.g.op("Slice",
                {in, e.g.ints(t + "_starts", {-p.pad_beg(), -p.pad_beg()}),
                 e.g.ints(t + "_ends", {x[2] + p.pad_end(), x[3] + p.pad_end()}), e.g.ints(t + "_axes", {2, 3})},
                t + "_cropped");
  bool nearest = p.mode() == proto::InterpParameter::NEAREST;
  std::vector<Attr> attrs;
  if (nearest) {  // PyTorch's 'nearest': src = floor(d * in / out)
    attrs = {Attr::s("mode", "nearest"), Attr::s("coordinate_transformation_mode", "asymmetric"),
             Attr::s("nearest_mode", "floor")};
  } else {
    attrs = {Attr::s("mode", "linear"),
             Attr::s("coordinate_transformation_mode", p.align_corners() ? "align_corners" : "pytorch_half_pixel")};
  }
  e.to_top("Resize", {in, "", "", e.g.ints(t + "_sizes", y)}, std::move(attrs));
}

void relu(LayerExport& e) {
  float slope = e.param().relu_param().negative_slope();
  if (slope == 0) return e.to_top("Relu", {e.bottoms[0]});
  e.to_top("LeakyRelu", {e.bottoms[0]}, {Attr::f("alpha", slope)});
}

// LRN: across channels it is ONNX's LRN (the same formula: bias k, alpha / n times the windowed
// sum of squares); within a channel, x * (1 + alpha * AveragePool(x^2, n x n, zero padding
// counted))^-beta, as layers/lrn.cpp computes it.
void lrn(LayerExport& e) {
  const auto& p = e.param().lrn_param();
  const int64_t n = p.local_size(), half = (n - 1) / 2;
  if (p.norm_region() == proto::LRNParameter::ACROSS_CHANNELS)
    return e.to_top("LRN", {e.bottoms[0]}, {Attr::i("size", n), Attr::f("alpha", p.alpha()), Attr::f("beta", p.beta()),
                                            Attr::f("bias", p.k())});
  Graph& g = e.g;
  const std::string& x = e.bottoms[0];
  std::string square = g.op("Mul", {x, x}, e.tops[0] + "_square");
  std::string mean = g.op("AveragePool", {square}, e.tops[0] + "_window",
                          {Attr::ints("kernel_shape", {n, n}), Attr::ints("strides", {1, 1}),
                           Attr::ints("pads", {half, half, half, half}), Attr::i("count_include_pad", 1)});
  std::string scale = g.op("Add", {g.op("Mul", {mean, g.floats("alpha", {p.alpha()}, {})}, e.tops[0] + "_scaled"),
                                   g.floats("one", {1.0f}, {})},
                           e.tops[0] + "_scale");
  std::string factor = g.op("Pow", {scale, g.floats("minus_beta", {-p.beta()}, {})}, e.tops[0] + "_factor");
  e.to_top("Mul", {x, factor});
}

void softmax(LayerExport& e) {
  int64_t axis = canonical(e.param().softmax_param().axis(), rank(e.bottom_shapes[0]));
  e.to_top("Softmax", {e.bottoms[0]}, {Attr::i("axis", axis)});
}

// ---- fusion layers -----------------------------------------------------------------------------

// Rows [m*N, (m+1)*N) of a modality-stacked value.
std::string modality(Graph& g, const std::string& x, int64_t m, int64_t n, const std::string& hint) {
  return g.slice(x, 0, m * n, (m + 1) * n, hint);
}

// For each modality m, rows of modality source[m] of x, stacked again.
std::string route(Graph& g, const std::string& x, const std::vector<int64_t>& source, int64_t n,
                  const std::string& hint) {
  std::vector<std::string> parts;
  for (size_t m = 0; m < source.size(); ++m)
    parts.push_back(modality(g, x, source[m], n, hint + "_m" + std::to_string(m)));
  return parts.size() == 1 ? parts[0] : g.op("Concat", parts, hint, {Attr::i("axis", 0)});
}

// Modality m keeps channels [0, k) and takes [k, C) from (m + 1) mod M when it receives.
void channel_shuffle(LayerExport& e) {
  const auto& p = e.param().channel_shuffle_param();
  const Shape& x = e.bottom_shapes[0];
  int64_t m = p.modalities(), c = x[1], n = x[0] / m;
  int64_t k = channel_shuffle_kept(c, p.keep_ratio());
  auto receives = receiver_mask(p.receivers(), m);
  std::vector<int64_t> source;
  for (int64_t i = 0; i < m; ++i) source.push_back(receives[static_cast<size_t>(i)] ? (i + 1) % m : i);
  if (k == c || source == range(0, m)) return e.to_top("Identity", {e.bottoms[0]});
  const std::string& t = e.tops[0];
  std::string given = route(e.g, e.g.slice(e.bottoms[0], 1, k, c, t + "_given"), source, n, t + "_taken");
  if (k == 0) return e.to_top("Identity", {given});
  e.to_top("Concat", {e.g.slice(e.bottoms[0], 1, 0, k, t + "_kept"), given}, {Attr::i("axis", 1)});
}

// top_m = Y_m + PS(A_{(m+1) mod M}) for receivers m, Y_m for the others. PS: channel group q
// (g = floor(C / (groups + 1)) channels) moved by pixel_shift_offset(q) with zero fill (a Pad
// then a Slice back to H x W), channels >= groups * g zero (a Pad along the channels).
void pixel_shift(LayerExport& e) {
  const auto& p = e.param().pixel_shift_param();
  const Shape& x = e.bottom_shapes[0];
  int64_t m = p.modalities(), c = x[1], h = x[2], w = x[3], n = x[0] / m;
  int64_t group = c / (p.groups() + 1);
  auto receives = receiver_mask(p.receivers(), m);
  bool any = false, all = true;
  for (bool r : receives) any = any || r, all = all && r;
  if (group == 0 || !any) return e.to_top("Identity", {e.bottoms[0]});
  const std::string& t = e.tops[0];
  std::vector<std::string> groups;
  for (int64_t q = 0; q < p.groups(); ++q) {
    std::string hint = t + "_group" + std::to_string(q);
    std::string part = e.g.slice(e.bottoms[1], 1, q * group, (q + 1) * group, hint);
    int64_t dh = 0, dw = 0;
    cpu::pixel_shift_offset(q, p.shift(), dh, dw);
    if (dh || dw) {
      // content moves by (dh, dw): zeros before it on the side it moves from, then H x W kept.
      int64_t top = std::max<int64_t>(dh, 0), bottom = std::max<int64_t>(-dh, 0);
      int64_t left = std::max<int64_t>(dw, 0), right = std::max<int64_t>(-dw, 0);
      std::string padded = e.g.op("Pad", {part, e.g.ints(hint + "_pads", {0, 0, top, left, 0, 0, bottom, right})},
                                  hint + "_padded", {Attr::s("mode", "constant")});
      part = e.g.op("Slice", {padded, e.g.ints(hint + "_starts", {bottom, right}),
                              e.g.ints(hint + "_ends", {bottom + h, right + w}), e.g.ints(hint + "_axes", {2, 3})},
                    hint + "_shifted");
    }
    groups.push_back(part);
  }
  std::string shifted = groups.size() == 1 ? groups[0] : e.g.op("Concat", groups, t + "_shifted", {Attr::i("axis", 1)});
  int64_t covered = p.groups() * group;
  if (covered < c)
    shifted = e.g.op("Pad", {shifted, e.g.ints(t + "_tail", {0, 0, 0, 0, 0, c - covered, 0, 0})}, t + "_ps",
                     {Attr::s("mode", "constant")});
  std::vector<int64_t> next;
  for (int64_t i = 0; i < m; ++i) next.push_back((i + 1) % m);
  if (all) return e.to_top("Add", {e.bottoms[0], route(e.g, shifted, next, n, t + "_from_next")});
  std::vector<std::string> parts;
  for (int64_t i = 0; i < m; ++i) {
    std::string hint = t + "_m" + std::to_string(i);
    std::string own = modality(e.g, e.bottoms[0], i, n, hint + "_y");
    if (receives[static_cast<size_t>(i)])
      own = e.g.op("Add", {own, modality(e.g, shifted, next[static_cast<size_t>(i)], n, hint + "_ps")}, hint);
    parts.push_back(own);
  }
  e.to_top("Concat", parts, {Attr::i("axis", 0)});
}

// s_m = ReduceMean(X_m) over the trailing dims; z = Relu(Gemm([s_1 .. s_M], squeeze));
// top_m = X_m * gate_scale * Sigmoid(Gemm(z, excite_m)), the gate reshaped to [N, C_m, 1, ...].
void mmtm(LayerExport& e) {
  const auto& p = e.param().mmtm_param();
  std::vector<std::string> squeezed;
  std::string name = e.layer.name();
  for (size_t i = 0; i < e.bottoms.size(); ++i) {
    const Shape& x = e.bottom_shapes[i];
    squeezed.push_back(rank(x) == 2 ? e.bottoms[i]
                                    : e.g.op("ReduceMean", {e.bottoms[i]}, name + "_squeeze" + std::to_string(i),
                                             {Attr::ints("axes", range(2, rank(x))), Attr::i("keepdims", 0)}));
  }
  std::string joint = e.g.op("Concat", squeezed, name + "_joint", {Attr::i("axis", 1)});
  std::string linear = e.g.op("Gemm", {joint, e.weight(0), e.weight(1)}, name + "_z_linear", {Attr::i("transB", 1)});
  std::string z = e.g.op("Relu", {linear}, name + "_z");
  std::string scale = e.g.floats(name + "_gate_scale", {p.gate_scale()}, {1});
  for (size_t i = 0; i < e.bottoms.size(); ++i) {
    const Shape& x = e.bottom_shapes[i];
    std::string hint = name + "_excite" + std::to_string(i);
    std::string excite = e.g.op("Gemm", {z, e.weight(2 + 2 * i), e.weight(3 + 2 * i)}, hint, {Attr::i("transB", 1)});
    std::string gate = e.g.op("Mul", {e.g.op("Sigmoid", {excite}, hint + "_sigmoid"), scale}, hint + "_gate");
    if (rank(x) > 2) {
      Shape gs = {x[0], x[1]};
      gs.resize(x.size(), 1);
      gate = e.g.reshape(gate, gs, hint + "_gate_map");
    }
    e.g.node("Mul", {e.bottoms[i], gate}, {e.tops[i]});
  }
}

// top = sum_m softmax(alpha)_m * logits_m (the detach of training has no forward effect).
void modality_ensemble(LayerExport& e) {
  int64_t m = e.param().modality_ensemble_param().modalities(), n = e.bottom_shapes[0][0] / m;
  const std::string& t = e.tops[0];
  std::string weights = e.g.op("Softmax", {e.weight(0)}, t + "_weights", {Attr::i("axis", 0)});
  std::vector<std::string> terms;
  for (int64_t i = 0; i < m; ++i) {
    std::string hint = t + "_m" + std::to_string(i);
    std::string logits = modality(e.g, e.bottoms[0], i, n, hint + "_logits");
    terms.push_back(e.g.op("Mul", {logits, e.g.slice(weights, 0, i, i + 1, hint + "_weight")}, hint));
  }
  e.to_top("Sum", terms);
}

void modality_split(LayerExport& e) {
  std::vector<int64_t> sizes(e.tops.size(), e.top_shapes[0][0]);
  e.g.node("Split", {e.bottoms[0], e.g.ints(e.tops[0] + "_split", sizes)}, e.tops, {Attr::i("axis", 0)});
}

void modality_tile(LayerExport& e) {
  std::vector<int64_t> repeats(e.bottom_shapes[0].size(), 1);
  repeats[0] = e.top_shapes[0][0] / e.bottom_shapes[0][0];
  e.to_top("Tile", {e.bottoms[0], e.g.ints(e.tops[0] + "_repeats", repeats)});
}

}  // namespace

const std::map<std::string, Exporter>& exporters() {
  static const std::map<std::string, Exporter> table = {
      {"Convolution", [](LayerExport& e) { convolution(e, false); }},
      {"Deconvolution", [](LayerExport& e) { convolution(e, true); }},
      {"Pooling", pooling},
      {"InnerProduct", inner_product},
      {"BatchNorm", batch_norm},
      {"InstanceNorm", instance_norm},
      {"Scale", scale},
      {"Eltwise", eltwise},
      {"Concat", concat},
      {"Slice", slice},
      {"Split", identity},
      {"Dropout", identity},  // inference: the identity
      {"Flatten", reshape_to_top},
      {"Reshape", reshape_to_top},
      {"Crop", crop},
      {"Interp", interp},
      {"ReLU", relu},
      {"Sigmoid", [](LayerExport& e) { e.to_top("Sigmoid", {e.bottoms[0]}); }},
      {"TanH", [](LayerExport& e) { e.to_top("Tanh", {e.bottoms[0]}); }},
      {"Softmax", softmax},
      {"LRN", lrn},
      {"ChannelShuffle", channel_shuffle},
      {"PixelShift", pixel_shift},
      {"MMTM", mmtm},
      {"ModalityEnsemble", modality_ensemble},
      {"ModalityStack", [](LayerExport& e) { e.to_top("Concat", e.bottoms, {Attr::i("axis", 0)}); }},
      {"ModalitySplit", modality_split},
      {"ModalityTile", modality_tile},
  };
  return table;
}

LayerRole layer_role(const Layer& layer) {
  const std::string& type = layer.type();
  // Input, and the data layers: no bottoms and a type named *Data (Caffe's Data, ImageData, ...).
  if (layer.is_input() || (layer.layer_param().bottom_size() == 0 && type.size() >= 4 &&
                           type.compare(type.size() - 4, 4, "Data") == 0))
    return LayerRole::source;
  if (layer.is_loss() || layer.sums_metric_state() || type == "Accuracy" || type == "ImageMetric" || type == "Silence")
    return LayerRole::dropped;
  return LayerRole::exported;
}

}  // namespace mmfuse::tools::onnx_export
