// The standard layers (Convolution, Deconvolution, InnerProduct, Pooling, BatchNorm, Concat,
// Slice, Crop, Dropout, Softmax, Interp, SoftmaxWithLoss, L1Loss): forward against the
// equivalent op calls on random data, shape inference, errors, and gradients through small
// float64 nets.
#include <cmath>
#include <memory>

#include "core/filler.h"
#include "core/net.h"
#include "core/snapshot.h"
#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::check_close;
using mmfuse::testing::random_input;

namespace {

std::string dims(const Shape& s) {
  std::string out = "shape {";
  for (int64_t d : s) {
    out += " dim: ";
    out += std::to_string(d);
  }
  out += " }";
  return out;
}

// An Input layer named after its top.
std::string input(const std::string& top, const Shape& s) {
  std::string t = "layer { name: \"in_";
  t += top;
  t += "\" type: \"Input\" top: \"";
  t += top;
  t += "\" input_param { ";
  t += dims(s);
  t += " } }\n";
  return t;
}

std::unique_ptr<Net> make_net(const std::string& text, proto::Phase phase = proto::TRAIN, uint64_t seed = 11) {
  return std::make_unique<Net>(read_net_text(text, "std.prototxt"), phase, Device::cpu(), seed, nullptr, DType::f64);
}

// Gradient check of blob `top` w.r.t. the fed tensors named in `wrt` and every learnable parameter.
void check_net_grad(Net& net, const std::string& top, const std::map<std::string, Tensor>& feed,
                    const std::vector<std::string>& wrt) {
  testing::check_net_grad(net, feed, wrt, {top});
}

// The ParseError message of building `text`, or "(no error)".
std::string build_error(const std::string& text) {
  try {
    make_net(text);
  } catch (const ParseError& e) {
    return e.what();
  }
  return "(no error)";
}

Tensor labels(const std::vector<int32_t>& v, const Shape& s) { return Tensor::from_vector(v, s, DType::i32); }

}  // namespace

TEST_CASE("Convolution: conv2d with Caffe's geometry fields, fillers, gradients") {
  Generator gen(1);
  Tensor x = random_input({2, 3, 7, 5}, gen);
  auto net = make_net(input("x", {2, 3, 7, 5}) +
                      "layer { name: \"a\" type: \"Convolution\" bottom: \"x\" top: \"a\" convolution_param { "
                      "num_output: 4 kernel_size: 3 pad: 1 stride: 2 bias_filler { type: \"uniform\" } } }\n"
                      "layer { name: \"b\" type: \"Convolution\" bottom: \"x\" top: \"b\" convolution_param { "
                      "num_output: 6 kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 0 dilation: 2 group: 3 bias_term: false } }\n");
  const Layer &a = *net->layer("a"), &b = *net->layer("b");
  CHECK(a.param(0).shape() == Shape{4, 3, 3, 3});
  CHECK(a.param(1).shape() == Shape{4});
  CHECK(b.params().size() == 1);
  CHECK(b.param(0).shape() == Shape{6, 1, 3, 2});
  CHECK(net->blob_shape("a") == Shape{2, 4, 4, 3});
  CHECK(net->blob_shape("b") == Shape{2, 6, 7, 3});
  // Default filler: PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 27, not Caffe's zeros.
  auto w = a.param(0).to_vector<double>();
  double bound = 1 / std::sqrt(27.0), biggest = 0;
  for (double v : w) biggest = std::max(biggest, std::abs(v));
  CHECK(biggest <= bound);
  CHECK(biggest > 0.5 * bound);
  auto blobs = net->forward({{"x", x}});
  check_close(blobs.at("a"), conv2d(x, a.param(0), a.param(1), {2, 2, 1, 1, 1, 1, 1}));
  check_close(blobs.at("b"), conv2d(x, b.param(0), Tensor(), {1, 1, 2, 0, 2, 2, 3}));
  for (const char* top : {"a", "b"}) check_net_grad(*net, top, {{"x", x}}, {"x"});

  // Net defaults give the filler when the layer has none.
  auto d = make_net("defaults { weight_filler { type: \"constant\" value: 0.5 } }\n" + input("x", {1, 2, 3, 3}) +
                    "layer { name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"c\" convolution_param { "
                    "num_output: 2 kernel_size: 1 } }\n");
  CHECK(d->layer("c")->param(0).to_vector<double>() == std::vector<double>(4, 0.5));

  CHECK(build_error(input("x", {2, 3, 7, 5}) +
                    "layer { name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"c\" convolution_param { "
                    "num_output: 4 kernel_size: 3 group: 2 } }\n") ==
        "std.prototxt:2: layer 'c' (Convolution): group 2 must divide the bottom's channels (3) and num_output (4)");
  CHECK(build_error(input("x", {2, 3, 7, 5}) +
                    "layer { name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"c\" convolution_param { "
                    "num_output: 4 kernel_size: 7 } }\n") ==
        "std.prototxt:2: layer 'c' (Convolution): kernel 7x7 (dilation 1x1) does not fit the padded input of [2, 3, 7, 5]");
  CHECK(build_error(input("x", {2, 3}) +
                    "layer { name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"c\" convolution_param { "
                    "num_output: 4 kernel_size: 1 } }\n") ==
        "std.prototxt:2: layer 'c' (Convolution): expects a [N, C, H, W] bottom, got [2, 3]");
}

TEST_CASE("Deconvolution: conv_transpose2d, weight [C_in, O/g, kh, kw], output_padding") {
  Generator gen(2);
  Tensor x = random_input({2, 4, 3, 4}, gen);
  auto net = make_net(input("x", {2, 4, 3, 4}) +
                      "layer { name: \"d\" type: \"Deconvolution\" bottom: \"x\" top: \"d\" convolution_param { "
                      "num_output: 6 kernel_size: 3 stride: 2 pad: 1 group: 2 output_padding: 1 "
                      "bias_filler { type: \"gaussian\" } } }\n");
  const Layer& d = *net->layer("d");
  CHECK(d.param(0).shape() == Shape{4, 3, 3, 3});
  CHECK(net->blob_shape("d") == Shape{2, 6, 6, 8});
  auto blobs = net->forward({{"x", x}});
  ConvTranspose2dOptions o{2, 2, 1, 1, 1, 1, 2, 1, 1};
  check_close(blobs.at("d"), conv_transpose2d(x, d.param(0), d.param(1), o));
  check_net_grad(*net, "d", {{"x", x}}, {"x"});
}

TEST_CASE("InnerProduct: linear over the dims from axis, transpose, gradients") {
  Generator gen(3);
  Tensor x = random_input({3, 2, 5}, gen);
  auto net = make_net(input("x", {3, 2, 5}) +
                      "layer { name: \"a\" type: \"InnerProduct\" bottom: \"x\" top: \"a\" inner_product_param { "
                      "num_output: 4 bias_filler { type: \"uniform\" } } }\n"
                      "layer { name: \"t\" type: \"InnerProduct\" bottom: \"x\" top: \"t\" inner_product_param { "
                      "num_output: 3 transpose: true bias_filler { type: \"uniform\" } } }\n"
                      "layer { name: \"l\" type: \"InnerProduct\" bottom: \"x\" top: \"l\" inner_product_param { "
                      "num_output: 7 axis: -1 bias_term: false } }\n");
  const Layer &a = *net->layer("a"), &t = *net->layer("t"), &l = *net->layer("l");
  CHECK(a.param(0).shape() == Shape{4, 10});
  CHECK(t.param(0).shape() == Shape{10, 3});
  CHECK(l.param(0).shape() == Shape{7, 5});
  CHECK(net->blob_shape("a") == Shape{3, 4});
  CHECK(net->blob_shape("l") == Shape{3, 2, 7});
  auto blobs = net->forward({{"x", x}});
  Tensor flat = x.reshape({3, 10});
  check_close(blobs.at("a"), linear(flat, a.param(0), a.param(1)));
  check_close(blobs.at("t"), matmul(flat, t.param(0)) + t.param(1));
  check_close(blobs.at("l"), linear(x, l.param(0)));
  for (const char* top : {"a", "t", "l"}) check_net_grad(*net, top, {{"x", x}}, {"x"});
}

TEST_CASE("Pooling: MAX/AVE with Caffe's CEIL rounding, FLOOR, global, errors") {
  Generator gen(4);
  Tensor x = random_input({2, 3, 7, 6}, gen);
  auto net = make_net(input("x", {2, 3, 7, 6}) +
                      "layer { name: \"m\" type: \"Pooling\" bottom: \"x\" top: \"m\" pooling_param { "
                      "pool: MAX kernel_size: 3 stride: 2 } }\n"
                      "layer { name: \"a\" type: \"Pooling\" bottom: \"x\" top: \"a\" pooling_param { "
                      "pool: AVE kernel_size: 3 stride: 2 pad: 1 } }\n"
                      "layer { name: \"f\" type: \"Pooling\" bottom: \"x\" top: \"f\" pooling_param { "
                      "pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1 round_mode: FLOOR } }\n"
                      "layer { name: \"g\" type: \"Pooling\" bottom: \"x\" top: \"g\" pooling_param { "
                      "pool: AVE global_pooling: true } }\n"
                      "layer { name: \"gm\" type: \"Pooling\" bottom: \"x\" top: \"gm\" pooling_param { "
                      "pool: MAX global_pooling: true } }\n");
  // Caffe: ceil((7 - 3) / 2) + 1 = 3, ceil((6 - 3) / 2) + 1 = 3 (FLOOR would give 2 for 6).
  CHECK(net->blob_shape("m") == Shape{2, 3, 3, 3});
  // pad 1: ceil((7 + 2 - 3) / 2) + 1 = 4; ceil((6 + 2 - 3) / 2) + 1 = 4 and the last window starts
  // at 6 = in + pad - 1 (inside), so it stays.
  CHECK(net->blob_shape("a") == Shape{2, 3, 4, 4});
  CHECK(net->blob_shape("f") == Shape{2, 3, 3, 4});
  CHECK(net->blob_shape("g") == Shape{2, 3, 1, 1});
  auto blobs = net->forward({{"x", x}});
  check_close(blobs.at("m"), max_pool2d(x, Pool2dOptions::square(3, 2, 0, true)));
  check_close(blobs.at("a"), avg_pool2d(x, Pool2dOptions::square(3, 2, 1, true)));
  check_close(blobs.at("f"), max_pool2d(x, {2, 3, 2, 1, 0, 0, false}));
  check_close(blobs.at("g"), global_avg_pool(x, true));
  check_close(blobs.at("gm"), max(x, {2, 3}, true));
  // A hand-computed AVE corner: window rows [-1, 2) x cols [-1, 2) clipped to the padded bounds,
  // so the divisor is 9 (count_include_pad) while 4 values are real.
  auto vx = x.to_vector<double>(), va = blobs.at("a").to_vector<double>();
  CHECK(va[0] == doctest::Approx((vx[0] + vx[1] + vx[6] + vx[7]) / 9));
  for (const char* top : {"m", "a", "f", "g"}) check_net_grad(*net, top, {{"x", x}}, {"x"});

  CHECK(build_error(input("x", {2, 3, 7, 6}) +
                    "layer { name: \"p\" type: \"Pooling\" bottom: \"x\" top: \"p\" pooling_param { "
                    "pool: STOCHASTIC kernel_size: 2 } }\n") ==
        "std.prototxt:2: layer 'p' (Pooling): pool: STOCHASTIC is not supported (use MAX or AVE)");
  CHECK(build_error(input("x", {2, 3, 7, 6}) +
                    "layer { name: \"p\" type: \"Pooling\" bottom: \"x\" top: \"p\" pooling_param { stride: 2 } }\n") ==
        "std.prototxt:2: layer 'p' (Pooling): kernel_size (or kernel_h and kernel_w) is required");
}

TEST_CASE("BatchNorm: batch_norm, modalities = two layers on the halves, frozen statistics") {
  Generator gen(5);
  const std::string affine = "affine: true scale_filler { type: \"uniform\" min: 0.5 max: 2 } "
                             "bias_filler { type: \"uniform\" } ";
  Tensor x = random_input({6, 3, 2, 3}, gen);
  auto net = make_net(input("x", {6, 3, 2, 3}) +
                      "layer { name: \"bn\" type: \"BatchNorm\" bottom: \"x\" top: \"bn\" batch_norm_param { " + affine +
                      "modalities: 2 moving_average_fraction: 0.75 } }\n");
  const Layer& bn = *net->layer("bn");
  REQUIRE(bn.params().size() == 5);
  CHECK(bn.params()[0].name == "bn.mean");
  CHECK(!bn.params()[0].learnable);
  CHECK(!bn.params()[1].learnable);
  CHECK(bn.params()[2].name == "bn.gamma");
  for (size_t i = 0; i < 4; ++i) CHECK(bn.params()[i].value.shape() == Shape{2, 3});
  CHECK(bn.params()[4].name == "bn.scale_factor");
  CHECK(!bn.params()[4].learnable);
  CHECK(bn.param(4).shape() == Shape{1});
  CHECK(bn.param(4).device() == Device::cpu());
  CHECK(bn.param(0).to_vector<double>() == std::vector<double>(6, 0.0));
  CHECK(bn.param(1).to_vector<double>() == std::vector<double>(6, 1.0));

  // Two single-modality layers with the same gamma/beta rows on the halves of the batch.
  auto half = make_net(input("x", {3, 3, 2, 3}) +
                       "layer { name: \"b\" type: \"BatchNorm\" bottom: \"x\" top: \"b\" batch_norm_param { " + affine +
                       "moving_average_fraction: 0.75 } }\n");
  const Layer& single = *half->layer("b");
  CHECK(single.param(2).shape() == Shape{3});
  Tensor out = net->forward({{"x", x}}).at("bn");
  auto vmean = bn.param(0).to_vector<double>(), vvar = bn.param(1).to_vector<double>(),
       vg = bn.param(2).to_vector<double>(), vb = bn.param(3).to_vector<double>();
  for (int64_t m = 0; m < 2; ++m) {
    auto row = [&](const std::vector<double>& v) { return std::vector<double>(v.begin() + 3 * m, v.begin() + 3 * m + 3); };
    single.param(0).fill_(0);
    single.param(1).fill_(1);
    single.param(4).fill_(0);  // a fresh layer: its first update takes the batch statistics
    single.param(2).copy_(Tensor::from_vector(row(vg), {3}, DType::f64));
    single.param(3).copy_(Tensor::from_vector(row(vb), {3}, DType::f64));
    Tensor part = half->forward({{"x", x.narrow(3 * m, 3)}}).at("b");
    check_close(out.narrow(3 * m, 3), part, 1e-11);  // the statistics summed in another order
    // Running statistics: momentum 1 - 0.75 from (0, 1).
    auto pm = single.param(0).to_vector<double>(), pv = single.param(1).to_vector<double>();
    for (int c = 0; c < 3; ++c) {
      CHECK(vmean[3 * m + c] == doctest::Approx(pm[c]));
      CHECK(vvar[3 * m + c] == doctest::Approx(pv[c]));
      CHECK(pm[c] != 0.0);
    }
  }
  // Equals the op.
  Tensor rm = Tensor::zeros({2, 3}, DType::f64), rv = Tensor::ones({2, 3}, DType::f64);
  check_close(out, batch_norm(x, bn.param(2), bn.param(3), rm, rv, {true, 0.25, 1e-5, 2}), 1e-11);
  check_net_grad(*net, "bn", {{"x", x}}, {"x"});

  // use_global_stats in TRAIN: running statistics frozen and used; gamma/beta still learn.
  auto frozen = make_net(input("x", {6, 3, 2, 3}) +
                         "layer { name: \"bn\" type: \"BatchNorm\" bottom: \"x\" top: \"bn\" batch_norm_param { " +
                         affine + "modalities: 2 use_global_stats: true } }\n");
  const Layer& fb = *frozen->layer("bn");
  fb.param(0).copy_(Tensor::from_vector(std::vector<double>{0.1, -0.2, 0.3, 0.0, 0.5, -0.5}, {2, 3}, DType::f64));
  fb.param(1).copy_(Tensor::from_vector(std::vector<double>{1.5, 0.5, 2.0, 1.0, 0.25, 3.0}, {2, 3}, DType::f64));
  auto before_m = fb.param(0).to_vector<double>(), before_v = fb.param(1).to_vector<double>();
  Tensor y = frozen->forward({{"x", x}}).at("bn");
  CHECK(fb.param(0).to_vector<double>() == before_m);
  CHECK(fb.param(1).to_vector<double>() == before_v);
  check_close(y, batch_norm(x, fb.param(2), fb.param(3), fb.param(0), fb.param(1), {false, 0.1, 1e-5, 2}));
  sum(y * y).backward();
  CHECK(fb.param(2).grad().defined());
  CHECK(fb.param(3).grad().defined());
  check_net_grad(*frozen, "bn", {{"x", x}}, {"x"});

  // Running averages as Caffe normalises them: S_t = f S_{t-1} + batch_t, s_t = f s_{t-1} + 1,
  // running = S_t / s_t; at global batch index t the update's momentum is 1 / s_t.
  {
    auto caffe = make_net(input("x", {4, 1, 1, 1}) +
                          "layer { name: \"bn\" type: \"BatchNorm\" bottom: \"x\" top: \"bn\" "
                          "batch_norm_param { moving_average_fraction: 0.75 } }\n");
    const Layer& cb = *caffe->layer("bn");
    Tensor b0 = Tensor::from_vector<double>({1, 2, 3, 6}, {4, 1, 1, 1});   // mean 3
    Tensor b1 = Tensor::from_vector<double>({9, 10, 11, 10}, {4, 1, 1, 1});  // mean 10
    caffe->forward({{"x", b0}}, 0);
    CHECK(cb.param(0).item() == doctest::Approx(3));  // s_0 = 1: the batch mean itself
    caffe->forward({{"x", b1}}, 1);
    const double mean1 = (0.75 * 3 + 10) / 1.75;
    CHECK(cb.param(0).item() == doctest::Approx(mean1));
    CHECK(cb.param(2).item() == 1.75);  // s_1, Caffe's third blob

    // Fine-tuning: loaded statistics continue their average whatever the iteration (the
    // first update no longer replaces them with one batch's).
    auto tuned = make_net(input("x", {4, 1, 1, 1}) +
                          "layer { name: \"bn\" type: \"BatchNorm\" bottom: \"x\" top: \"bn\" "
                          "batch_norm_param { moving_average_fraction: 0.75 } }\n");
    CopyReport r = copy_weights(*tuned, net_weights(*caffe), /*strict=*/true);
    CHECK(r.loaded.size() == 3);
    tuned->forward({{"x", b0}}, 0);
    const double s2 = 0.75 * 1.75 + 1;
    CHECK(tuned->layer("bn")->param(0).item() == doctest::Approx(mean1 + (3 - mean1) / s2));
    CHECK(tuned->layer("bn")->param(2).item() == doctest::Approx(s2));

    // A file from before the scale factor was stored: continued as a converged average,
    // s = 1 / (1 - f) = 4, momentum 1 / (0.75 * 4 + 1) = 0.25.
    proto::NetWeights old_file = net_weights(*caffe);
    old_file.mutable_param()->RemoveLast();
    auto legacy = make_net(input("x", {4, 1, 1, 1}) +
                           "layer { name: \"bn\" type: \"BatchNorm\" bottom: \"x\" top: \"bn\" "
                           "batch_norm_param { moving_average_fraction: 0.75 } }\n");
    r = copy_weights(*legacy, old_file, /*strict=*/true);
    CHECK(r.defaulted == std::vector<std::string>{"bn.scale_factor"});
    legacy->forward({{"x", b0}}, 0);
    CHECK(legacy->layer("bn")->param(0).item() == doctest::Approx(mean1 + 0.25 * (3 - mean1)));
  }

  // TEST defaults to the running statistics (Caffe); Caffe-style BN (no affine) has Caffe's three
  // blobs: mean and variance of [C], the scale factor of [1].
  auto test = make_net(input("x", {3, 3, 2, 3}) +
                           "layer { name: \"bn\" type: \"BatchNorm\" bottom: \"x\" top: \"bn\" }\n",
                       proto::TEST);
  CHECK(test->layer("bn")->params().size() == 3);
  CHECK(test->layer("bn")->param(0).shape() == Shape{3});
  Tensor xt = x.narrow(0, 3).detach();
  check_close(test->forward({{"x", xt}}).at("bn"), xt * (1 / std::sqrt(1 + 1e-5)), 1e-9);

  CHECK(build_error(input("x", {5, 3, 2}) +
                    "layer { name: \"bn\" type: \"BatchNorm\" bottom: \"x\" top: \"bn\" batch_norm_param { "
                    "modalities: 2 } }\n") ==
        "std.prototxt:2: layer 'bn' (BatchNorm): batch_norm: batch 5 of [5, 3, 2] is not divisible by modalities 2");
}

TEST_CASE("Concat and Slice: concat/split along an axis, legacy dims, gradients") {
  Generator gen(6);
  Tensor x = random_input({2, 3, 5}, gen), y = random_input({2, 4, 5}, gen);
  auto net = make_net(input("x", {2, 3, 5}) + input("y", {2, 4, 5}) +
                      "layer { name: \"c\" type: \"Concat\" bottom: \"x\" bottom: \"y\" bottom: \"x\" top: \"c\" }\n"
                      "layer { name: \"s\" type: \"Slice\" bottom: \"c\" top: \"s0\" top: \"s1\" top: \"s2\" "
                      "slice_param { slice_point: 1 slice_point: 7 } }\n"
                      "layer { name: \"e\" type: \"Slice\" bottom: \"c\" top: \"e0\" top: \"e1\" "
                      "slice_param { slice_dim: 1 } }\n"
                      "layer { name: \"c0\" type: \"Concat\" bottom: \"x\" bottom: \"x\" top: \"c0\" "
                      "concat_param { concat_dim: 0 } }\n");
  CHECK(net->blob_shape("c") == Shape{2, 10, 5});
  CHECK(net->blob_shape("s1") == Shape{2, 6, 5});
  CHECK(net->blob_shape("s2") == Shape{2, 3, 5});
  CHECK(net->blob_shape("c0") == Shape{4, 3, 5});
  CHECK(net->blob_shape("e1") == Shape{2, 5, 5});
  auto blobs = net->forward({{"x", x}, {"y", y}});
  Tensor c = concat({x, y, x}, 1);
  check_close(blobs.at("c"), c);
  auto parts = split(c, {1, 6, 3}, 1);
  const char* slice_tops[] = {"s0", "s1", "s2"};  // (not "s" + to_string: GCC 12's -Wrestrict misfires)
  for (int i = 0; i < 3; ++i) check_close(blobs.at(slice_tops[i]), parts[i]);
  // 5 does not split evenly in 2 along the last axis.
  CHECK(build_error(input("x", {2, 3, 5}) +
                    "layer { name: \"e\" type: \"Slice\" bottom: \"x\" top: \"a\" top: \"b\" slice_param { axis: -1 } }\n") ==
        "std.prototxt:2: layer 'e' (Slice): dim 5 of [2, 3, 5] along axis 2 does not split into 2 equal parts (give "
        "slice_point)");
  CHECK(build_error(input("x", {2, 3, 5}) + input("y", {2, 4, 4}) +
                    "layer { name: \"c\" type: \"Concat\" bottom: \"x\" bottom: \"y\" top: \"c\" }\n") ==
        "std.prototxt:3: layer 'c' (Concat): bottoms must agree except along axis 1, got [2, 3, 5] and [2, 4, 4] (bottom 1)");
  auto even = make_net(input("x", {2, 3, 6}) +
                       "layer { name: \"e\" type: \"Slice\" bottom: \"x\" top: \"a\" top: \"b\" slice_param { axis: -1 } }\n");
  Tensor x6 = random_input({2, 3, 6}, gen);
  auto halves = even->forward({{"x", x6}});
  check_close(halves.at("b"), slice(x6, 2, 3, 6));
  check_net_grad(*net, "c", {{"x", x}, {"y", y}}, {"x", "y"});
  check_net_grad(*net, "s1", {{"x", x}, {"y", y}}, {"x", "y"});
  check_net_grad(*net, "c0", {{"x", x}, {"y", y}}, {"x"});
}

TEST_CASE("Crop: bottom 0 cropped to bottom 1's shape from axis, with offsets") {
  Generator gen(7);
  Tensor x = random_input({2, 3, 7, 5}, gen), ref = random_input({2, 1, 4, 3}, gen);
  auto net = make_net(input("x", {2, 3, 7, 5}) + input("r", {2, 1, 4, 3}) +
                      "layer { name: \"a\" type: \"Crop\" bottom: \"x\" bottom: \"r\" top: \"a\" "
                      "crop_param { offset: 2 offset: 1 } }\n"
                      "layer { name: \"b\" type: \"Crop\" bottom: \"x\" bottom: \"r\" top: \"b\" "
                      "crop_param { axis: 1 offset: 1 } }\n"
                      "layer { name: \"c\" type: \"Crop\" bottom: \"x\" bottom: \"r\" top: \"c\" }\n");
  CHECK(net->blob_shape("a") == Shape{2, 3, 4, 3});
  CHECK(net->blob_shape("b") == Shape{2, 1, 4, 3});
  auto blobs = net->forward({{"x", x}, {"r", ref}});
  check_close(blobs.at("a"), crop(x, {0, 0, 2, 1}, {2, 3, 4, 3}));
  check_close(blobs.at("b"), crop(x, {0, 1, 1, 1}, {2, 1, 4, 3}));
  check_close(blobs.at("c"), crop(x, {0, 0, 0, 0}, {2, 3, 4, 3}));
  // Hand check: element [1, 2, 0, 0] of a is x[1, 2, 2, 1].
  CHECK(blobs.at("a").to_vector<double>()[(1 * 3 + 2) * 12] == x.to_vector<double>()[((1 * 3 + 2) * 7 + 2) * 5 + 1]);
  for (const char* top : {"a", "b"}) check_net_grad(*net, top, {{"x", x}, {"r", ref}}, {"x"});
  CHECK(build_error(input("x", {2, 3, 7, 5}) + input("r", {2, 1, 4, 3}) +
                    "layer { name: \"a\" type: \"Crop\" bottom: \"x\" bottom: \"r\" top: \"a\" "
                    "crop_param { offset: 4 offset: 1 } }\n") ==
        "std.prototxt:3: layer 'a' (Crop): crop of 4 at offset 4 exceeds dim 2 of [2, 3, 7, 5] (reference [2, 1, 4, 3])");
}

TEST_CASE("Dropout: inverted dropout in TRAIN from the net's generator, identity in TEST") {
  Generator gen(8);
  Tensor x = random_input({4, 5, 6}, gen);
  const std::string layers = input("x", {4, 5, 6}) +
                             "layer { name: \"d\" type: \"Dropout\" bottom: \"x\" top: \"d\" "
                             "dropout_param { dropout_ratio: 0.25 } }\n";
  auto train = make_net(layers);
  Tensor y = train->forward({{"x", x}}).at("d");
  auto vx = x.to_vector<double>(), vy = y.to_vector<double>();
  int zeros = 0;
  for (size_t i = 0; i < vx.size(); ++i) {
    if (vy[i] == 0) ++zeros;
    else CHECK(vy[i] == doctest::Approx(vx[i] / 0.75));
  }
  CHECK(zeros > 20);  // about 30 of 120
  CHECK(zeros < 45);
  // The gradient is the mask scaled by 1 / (1 - p): dy/dx * x == y.
  x.set_grad(Tensor());
  sum(y).backward();
  auto g = x.grad().to_vector<double>();
  for (size_t i = 0; i < vx.size(); ++i) CHECK(g[i] * vx[i] == doctest::Approx(vy[i]));
  // The next forward draws a new mask.
  CHECK(train->forward({{"x", x}}).at("d").to_vector<double>() != vy);
  // The same seed gives the same masks.
  CHECK(make_net(layers)->forward({{"x", x}}).at("d").to_vector<double>() == vy);
  auto test = make_net(layers, proto::TEST);
  CHECK(test->forward({{"x", x}}).at("d").to_vector<double>() == vx);
}

TEST_CASE("Softmax: along an axis, gradients") {
  Generator gen(9);
  Tensor x = random_input({3, 4, 5}, gen);
  auto net = make_net(input("x", {3, 4, 5}) +
                      "layer { name: \"s\" type: \"Softmax\" bottom: \"x\" top: \"s\" }\n"
                      "layer { name: \"l\" type: \"Softmax\" bottom: \"x\" top: \"l\" softmax_param { axis: -1 } }\n");
  auto blobs = net->forward({{"x", x}});
  check_close(blobs.at("s"), softmax(x, 1));
  check_close(blobs.at("l"), softmax(x, 2));
  // Hand check of one column: exp(x_k) / sum_k exp(x_k) along dim 1.
  auto vx = x.to_vector<double>(), vs = blobs.at("s").to_vector<double>();
  double z = 0;
  for (int k = 0; k < 4; ++k) z += std::exp(vx[k * 5]);
  CHECK(vs[2 * 5] == doctest::Approx(std::exp(vx[2 * 5]) / z));
  for (const char* top : {"s", "l"}) check_net_grad(*net, top, {{"x", x}}, {"x"});
}

TEST_CASE("Interp: sizes by height/width, a second bottom, zoom and shrink (DeepLab), crop pads") {
  Generator gen(10);
  Tensor x = random_input({2, 3, 4, 5}, gen);
  Tensor label = labels(std::vector<int32_t>(2 * 7 * 9, 0), {2, 7, 9});
  auto net = make_net(input("x", {2, 3, 4, 5}) +
                      "layer { name: \"in_l\" type: \"Input\" top: \"label\" input_param { shape { dim: 2 dim: 7 dim: 9 } } }\n"
                      "layer { name: \"hw\" type: \"Interp\" bottom: \"x\" top: \"hw\" interp_param { height: 6 width: 3 } }\n"
                      "layer { name: \"ref\" type: \"Interp\" bottom: \"x\" bottom: \"label\" top: \"ref\" }\n"
                      "layer { name: \"z\" type: \"Interp\" bottom: \"x\" top: \"z\" interp_param { zoom_factor: 3 } }\n"
                      "layer { name: \"s\" type: \"Interp\" bottom: \"x\" top: \"s\" interp_param { shrink_factor: 2 } }\n"
                      "layer { name: \"sz\" type: \"Interp\" bottom: \"x\" top: \"sz\" interp_param { "
                      "shrink_factor: 2 zoom_factor: 2 } }\n"
                      "layer { name: \"p\" type: \"Interp\" bottom: \"x\" top: \"p\" interp_param { "
                      "zoom_factor: 2 pad_beg: -1 pad_end: 0 } }\n"
                      "layer { name: \"n\" type: \"Interp\" bottom: \"x\" top: \"n\" interp_param { "
                      "height: 8 width: 7 mode: NEAREST } }\n"
                      "layer { name: \"h\" type: \"Interp\" bottom: \"x\" top: \"h\" interp_param { "
                      "height: 8 width: 7 align_corners: false } }\n");
  CHECK(net->blob_shape("hw") == Shape{2, 3, 6, 3});
  CHECK(net->blob_shape("ref") == Shape{2, 3, 7, 9});
  CHECK(net->blob_shape("z") == Shape{2, 3, 10, 13});  // (4 - 1) * 3 + 1, (5 - 1) * 3 + 1
  CHECK(net->blob_shape("s") == Shape{2, 3, 2, 3});    // (4 - 1) / 2 + 1, (5 - 1) / 2 + 1
  CHECK(net->blob_shape("sz") == Shape{2, 3, 3, 5});   // shrink then zoom
  CHECK(net->blob_shape("p") == Shape{2, 3, 5, 7});    // crop to 3 x 4, then zoom
  auto blobs = net->forward({{"x", x}, {"label", label}});
  check_close(blobs.at("hw"), upsample_bilinear(x, 6, 3, true));
  check_close(blobs.at("ref"), upsample_bilinear(x, 7, 9, true));
  check_close(blobs.at("z"), upsample_bilinear(x, 10, 13, true));
  check_close(blobs.at("p"), upsample_bilinear(crop(x, {0, 0, 1, 1}, {2, 3, 3, 4}), 5, 7, true));
  check_close(blobs.at("n"), upsample_nearest(x, 8, 7));
  check_close(blobs.at("h"), upsample_bilinear(x, 8, 7, false));
  // Zoom with aligned corners keeps every input pixel: z[.., 3i, 3j] == x[.., i, j].
  auto vx = x.to_vector<double>(), vz = blobs.at("z").to_vector<double>();
  CHECK(vz[3 * 13 + 6] == doctest::Approx(vx[1 * 5 + 2]));
  for (const char* top : {"z", "ref", "p"}) check_net_grad(*net, top, {{"x", x}, {"label", label}}, {"x"});
  CHECK(build_error(input("x", {2, 3, 4, 5}) +
                    "layer { name: \"i\" type: \"Interp\" bottom: \"x\" top: \"i\" }\n") ==
        "std.prototxt:2: layer 'i' (Interp): give height and width, zoom_factor, shrink_factor, or a second bottom for "
        "the output size");
}

TEST_CASE("SoftmaxWithLoss: cross entropy, ignore_label, normalisations, float labels, probabilities") {
  Generator gen(11);
  Tensor logits = random_input({3, 4, 2, 3}, gen);
  std::vector<int32_t> lv{0, 1, 2, 3, 255, 1, 2, 2, 255, 0, 3, 1, 1, 1, 0, 255, 3, 2};
  Tensor label = labels(lv, {3, 2, 3});
  auto net_with = [&](const std::string& loss_param, int tops = 1) {
    std::string text = input("x", {3, 4, 2, 3}) +
                       "layer { name: \"in_l\" type: \"Input\" top: \"label\" input_param { shape { dim: 3 dim: 1 "
                       "dim: 2 dim: 3 } } }\n"
                       "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"x\" bottom: \"label\" top: \"loss\"";
    if (tops == 2) text += " top: \"prob\"";
    text += " loss_param { " + loss_param + " } }\n";
    return make_net(text);
  };
  // Hand loop: -log softmax at the label, over the 15 non-ignored of 18 positions.
  auto vx = logits.to_vector<double>();
  double total = 0;
  int valid = 0;
  for (int n = 0; n < 3; ++n)
    for (int s = 0; s < 6; ++s) {
      int32_t t = lv[n * 6 + s];
      if (t == 255) continue;
      double z = 0;
      for (int k = 0; k < 4; ++k) z += std::exp(vx[(n * 4 + k) * 6 + s]);
      total += std::log(z) - vx[(n * 4 + t) * 6 + s];
      ++valid;
    }
  REQUIRE(valid == 15);
  Tensor label4 = label.reshape({3, 1, 2, 3});  // Caffe's [N, 1, H, W] label
  std::map<std::string, Tensor> feed{{"x", logits}, {"label", label4}};
  auto valid_net = net_with("ignore_label: 255", 2);
  auto blobs = valid_net->forward(feed);
  CHECK(blobs.at("loss").item() == doctest::Approx(total / 15));
  CHECK(valid_net->loss().item() == doctest::Approx(total / 15));
  CHECK(blobs.at("loss").item() == doctest::Approx(cross_entropy(logits, label, 255).item()));
  check_close(blobs.at("prob"), softmax(logits, 1));
  CHECK(net_with("ignore_label: 255 normalization: FULL")->forward(feed).at("loss").item() == doctest::Approx(total / 18));
  CHECK(net_with("ignore_label: 255 normalization: BATCH_SIZE")->forward(feed).at("loss").item() ==
        doctest::Approx(total / 3));
  CHECK(net_with("ignore_label: 255 normalization: NONE")->forward(feed).at("loss").item() == doctest::Approx(total));
  CHECK(net_with("ignore_label: 255 normalize: false")->forward(feed).at("loss").item() == doctest::Approx(total / 3));
  // Float labels (Caffe's data layers) are converted.
  std::map<std::string, Tensor> float_feed{{"x", logits}, {"label", label4.to(DType::f32)}};
  CHECK(valid_net->forward(float_feed).at("loss").item() == doctest::Approx(total / 15));
  // Every position ignored: 0 (Caffe's divisor is at least 1), not NaN.
  std::map<std::string, Tensor> ignored{{"x", logits}, {"label", labels(std::vector<int32_t>(18, 255), {3, 1, 2, 3})}};
  CHECK(valid_net->forward(ignored).at("loss").item() == 0.0);
  check_net_grad(*valid_net, "loss", feed, {"x"});

  CHECK(build_error(input("x", {3, 4, 2, 3}) + input("label", {3, 2, 2}) +
                    "layer { name: \"l\" type: \"SoftmaxWithLoss\" bottom: \"x\" bottom: \"label\" top: \"l\" }\n") ==
        "std.prototxt:3: layer 'l' (SoftmaxWithLoss): label [3, 2, 2] does not match logits [3, 4, 2, 3] (expected "
        "[3, 2, 3])");
}

TEST_CASE("SoftmaxWithLoss: modalities = the sum of each modality's normalised loss") {
  Generator gen(12);
  Tensor logits = random_input({4, 3, 5}, gen);  // M = 2, N = 2, K = 3, 5 positions
  std::vector<int32_t> lv{0, 2, 1, 255, 2, 1, 255, 255, 0, 0};
  Tensor label = labels(lv, {2, 5});
  auto stacked = make_net(input("x", {4, 3, 5}) + input("label", {2, 5}) +
                          "layer { name: \"l\" type: \"SoftmaxWithLoss\" bottom: \"x\" bottom: \"label\" top: \"l\" "
                          "loss_param { ignore_label: 255 modalities: 2 } }\n");
  auto one = make_net(input("x", {2, 3, 5}) + input("label", {2, 5}) +
                      "layer { name: \"l\" type: \"SoftmaxWithLoss\" bottom: \"x\" bottom: \"label\" top: \"l\" "
                      "loss_param { ignore_label: 255 } }\n");
  double expect = 0;
  for (int64_t m = 0; m < 2; ++m)
    expect += one->forward({{"x", logits.narrow(2 * m, 2)}, {"label", label}}).at("l").item();
  std::map<std::string, Tensor> feed{{"x", logits}, {"label", label}};
  CHECK(stacked->forward(feed).at("l").item() == doctest::Approx(expect));
  CHECK(expect == doctest::Approx(cross_entropy(logits.narrow(0, 2), label, 255).item() +
                                  cross_entropy(logits.narrow(2, 2), label, 255).item()));
  check_net_grad(*stacked, "l", feed, {"x"});
  CHECK(build_error(input("x", {4, 3, 5}) + input("label", {4, 5}) +
                    "layer { name: \"l\" type: \"SoftmaxWithLoss\" bottom: \"x\" bottom: \"label\" top: \"l\" "
                    "loss_param { modalities: 2 } }\n") ==
        "std.prototxt:3: layer 'l' (SoftmaxWithLoss): label [4, 5] does not match logits [4, 3, 5] (expected [2, 5] "
        "for the stacked logits of 2 modalities)");
}

TEST_CASE("L1Loss: mean |a - b|, gradient") {
  Generator gen(13);
  Tensor a = random_input({3, 5}, gen), b = random_input({3, 5}, gen);
  auto net = make_net(input("x", {3, 5}) + input("y", {3, 5}) +
                      "layer { name: \"l\" type: \"L1Loss\" bottom: \"x\" bottom: \"y\" top: \"l\" }\n");
  std::map<std::string, Tensor> feed{{"x", a}, {"y", b}};
  net->forward(feed);
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double expect = 0;
  for (size_t i = 0; i < va.size(); ++i) expect += std::abs(va[i] - vb[i]);
  CHECK(net->loss().item() == doctest::Approx(expect / 15));
  check_net_grad(*net, "l", feed, {"x", "y"});
  CHECK(build_error(input("x", {3, 5}) + input("y", {5, 3}) +
                    "layer { name: \"l\" type: \"L1Loss\" bottom: \"x\" bottom: \"y\" top: \"l\" }\n") ==
        "std.prototxt:3: layer 'l' (L1Loss): bottoms must have one shape, got [3, 5] and [5, 3]");
}
