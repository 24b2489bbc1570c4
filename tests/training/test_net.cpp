// Net: errors that name file lines and layers, phase rules, in-place blobs, weight sharing,
// deploy inputs, defaults, loss weights, and a small net's forward and backward by hand.
#include <memory>

#include "core/net.h"
#include "core/ops.h"
#include "tests/gradcheck.h"

using namespace mmfuse;

namespace {

std::unique_ptr<Net> build(const std::string& text, proto::Phase phase = proto::TRAIN, DType dtype = DType::f32,
                           const Net* share_with = nullptr) {
  return std::make_unique<Net>(read_net_text(text, "net.prototxt"), phase, Device::cpu(), 7, share_with, dtype);
}

std::string build_error(const std::string& text) {
  try {
    build(text);
  } catch (const ParseError& e) {
    return e.what();
  }
  return "(no error)";
}

const char* kInput23 = "layer { name: \"data\" type: \"Input\" top: \"data\" input_param { shape { dim: 2 dim: 3 } } }\n";

}  // namespace

TEST_CASE("an unknown layer type names the layer, its file line and the nearest type") {
  std::string text = std::string(kInput23) + "\nlayer {\n  name: \"sig1\"\n  type: \"Sigmiod\"\n  bottom: \"data\" top: \"s\"\n}\n";
  CHECK(build_error(text) == "layer 'sig1' (net.prototxt:3): unknown type 'Sigmiod'; did you mean 'Sigmoid'?");
  CHECK(build_error(std::string(kInput23) + "layer { name: \"q\" type: \"Quux\" bottom: \"data\" top: \"q\" }")
            .starts_with("layer 'q' (net.prototxt:2): layer type 'Quux' is not supported by mmfuse; supported types: "
                         "Accuracy, BatchNorm,"));
}

TEST_CASE("arity errors say what the layer takes") {
  std::string two = std::string(kInput23) +
                    "layer { name: \"d2\" type: \"Input\" top: \"d2\" input_param { shape { dim: 2 dim: 3 } } }\n";
  CHECK(build_error(two + "layer { name: \"relu1\" type: \"ReLU\" bottom: \"data\" bottom: \"d2\" top: \"r\" }") ==
        "net.prototxt:3: layer 'relu1' (ReLU) takes 1 bottom, got 2");
  CHECK(build_error(two + "layer { name: \"e\" type: \"Eltwise\" bottom: \"data\" top: \"r\" }") ==
        "net.prototxt:3: layer 'e' (Eltwise) takes at least 2 bottoms, got 1");
  CHECK(build_error(two + "layer { name: \"l\" type: \"EuclideanLoss\" bottom: \"data\" bottom: \"d2\" top: \"a\" "
                          "top: \"b\" }") == "net.prototxt:3: layer 'l' (EuclideanLoss) takes 1 top, got 2");
  CHECK(build_error(two + "layer { name: \"s\" type: \"Scale\" bottom: \"data\" bottom: \"d2\" bottom: \"d2\" top: \"r\" }") ==
        "net.prototxt:3: layer 's' (Scale) takes 1 to 2 bottoms, got 3");
}

TEST_CASE("a missing bottom suggests a known blob; shape errors name the layer") {
  CHECK(build_error(std::string(kInput23) + "layer { name: \"r\" type: \"ReLU\" bottom: \"dta\" top: \"r\" }") ==
        "net.prototxt:2: layer 'r' (ReLU): bottom 'dta' is not a top of any earlier layer; did you mean 'data'?");
  CHECK(build_error(std::string(kInput23) +
                    "layer { name: \"f\" type: \"Flatten\" bottom: \"data\" top: \"f\" flatten_param { axis: 5 } }") ==
        "net.prototxt:2: layer 'f' (Flatten): axis 5 out of range for a 2-d bottom");
  CHECK(build_error(std::string(kInput23) + "layer { name: \"a\" type: \"ReLU\" bottom: \"data\" top: \"r\" }\n"
                                            "layer { name: \"b\" type: \"TanH\" bottom: \"data\" top: \"r\" }") ==
        "net.prototxt:3: layer 'b' (TanH): top 'r' is already produced by an earlier layer (only an in-place layer, "
        "with a bottom of the same name, may reuse a name)");
}

TEST_CASE("shape inference: Flatten and Reshape as Caffe") {
  auto net = build(
      "layer { name: \"data\" type: \"Input\" top: \"data\" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 5 } } }\n"
      "layer { name: \"f1\" type: \"Flatten\" bottom: \"data\" top: \"f1\" }\n"
      "layer { name: \"f2\" type: \"Flatten\" bottom: \"data\" top: \"f2\" flatten_param { axis: 2 } }\n"
      "layer { name: \"f3\" type: \"Flatten\" bottom: \"data\" top: \"f3\" flatten_param { axis: 0 end_axis: -2 } }\n"
      "layer { name: \"r1\" type: \"Reshape\" bottom: \"data\" top: \"r1\" reshape_param { shape { dim: 0 dim: -1 dim: 10 } } }\n"
      "layer { name: \"r2\" type: \"Reshape\" bottom: \"data\" top: \"r2\" "
      "reshape_param { shape { dim: 2 dim: 2 } axis: 2 num_axes: 1 } }\n"
      "layer { name: \"r3\" type: \"Reshape\" bottom: \"data\" top: \"r3\" reshape_param { shape { dim: 1 } axis: -1 num_axes: 0 } }\n");
  CHECK(net->blob_shape("f1") == Shape{2, 60});
  CHECK(net->blob_shape("f2") == Shape{2, 3, 20});
  CHECK(net->blob_shape("f3") == Shape{24, 5});
  CHECK(net->blob_shape("r1") == Shape{2, 6, 10});
  CHECK(net->blob_shape("r2") == Shape{2, 3, 2, 2, 5});
  CHECK(net->blob_shape("r3") == Shape{2, 3, 4, 5, 1});
  // Forward agrees with setup.
  Generator gen(1);
  auto blobs = net->forward({{"data", Tensor::rand({2, 3, 4, 5}, gen)}});
  for (const auto& name : {"f1", "f2", "f3", "r1", "r2", "r3"}) CHECK(blobs.at(name).shape() == net->blob_shape(name));
  CHECK(build_error(std::string(kInput23) +
                    "layer { name: \"r\" type: \"Reshape\" bottom: \"data\" top: \"r\" reshape_param { shape { dim: 4 dim: -1 } } }") ==
        "net.prototxt:2: layer 'r' (Reshape): cannot infer the -1 dim: 6 elements of [2, 3] do not divide by 4");
}

TEST_CASE("phase, stage and level rules filter layers as Caffe") {
  std::string text = std::string(kInput23) +
                     "layer { name: \"t\" type: \"TanH\" bottom: \"data\" top: \"t\" include { phase: TEST } }\n"
                     "layer { name: \"s\" type: \"Sigmoid\" bottom: \"data\" top: \"s\" exclude { phase: TEST } }\n"
                     "layer { name: \"d\" type: \"ReLU\" bottom: \"data\" top: \"d\" include { stage: \"deploy\" } }\n"
                     "layer { name: \"h\" type: \"ReLU\" bottom: \"data\" top: \"h\" include { min_level: 2 } }\n";
  auto train = build(text, proto::TRAIN);
  CHECK(train->layer("t") == nullptr);
  CHECK(train->layer("s") != nullptr);
  CHECK(train->layer("d") == nullptr);
  CHECK(train->layer("h") == nullptr);
  auto test = build(text, proto::TEST);
  CHECK(test->layer("t") != nullptr);
  CHECK(test->layer("s") == nullptr);
  proto::NetParameter p = read_net_text(text, "net.prototxt");
  p.mutable_state()->add_stage("deploy");
  p.mutable_state()->set_level(3);
  Net staged(p, proto::TRAIN);
  CHECK(staged.layer("d") != nullptr);
  CHECK(staged.layer("h") != nullptr);
}

TEST_CASE("in-place layers rebind the blob name; outputs are the unconsumed tops") {
  auto net = build(std::string(kInput23) +
                   "layer { name: \"sig\" type: \"Sigmoid\" bottom: \"data\" top: \"x\" }\n"
                   "layer { name: \"neg\" type: \"Scale\" bottom: \"x\" top: \"x\" scale_param { filler { type: \"constant\" value: -1 } } }\n"
                   "layer { name: \"relu\" type: \"ReLU\" bottom: \"x\" top: \"x\" relu_param { negative_slope: 0.5 } }\n"
                   "layer { name: \"split\" type: \"Split\" bottom: \"x\" top: \"y1\" top: \"y2\" }\n"
                   "layer { name: \"quiet\" type: \"Silence\" bottom: \"y1\" }\n");
  CHECK(net->output_names() == std::vector<std::string>{"y2"});
  Tensor x = Tensor::from_vector<float>({0, 1, -1, 2, -2, 3}, {2, 3});
  auto blobs = net->forward({{"data", x}});
  auto expect = relu(neg(sigmoid(x)), 0.5).to_vector<float>();
  CHECK(blobs.at("x").to_vector<float>() == expect);
  CHECK(blobs.at("y2").to_vector<float>() == expect);
  CHECK(blobs.at("y2").same(blobs.at("y1")));
  CHECK(net->blob_names() == std::vector<std::string>{"data", "x", "y1", "y2"});
}

TEST_CASE("a small net's forward and backward by hand") {
  // s = 2 x + 1 (Scale with bias); loss = sum((s - t)^2) / (2 N), N = 2.
  auto net = build(
      "layer { name: \"data\" type: \"Input\" top: \"data\" top: \"target\" input_param { shape { dim: 2 dim: 3 } } }\n"
      "layer { name: \"sc\" type: \"Scale\" bottom: \"data\" top: \"s\" param { lr_mult: 0.5 decay_mult: 0 } param { lr_mult: 2 }\n"
      "  scale_param { bias_term: true filler { type: \"constant\" value: 2 } bias_filler { type: \"constant\" value: 1 } } }\n"
      "layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"s\" bottom: \"target\" top: \"loss\" }\n");
  auto params = net->learnable_params();
  REQUIRE(params.size() == 2);
  CHECK(params[0].name == "sc.gamma");
  CHECK(params[1].name == "sc.beta");
  CHECK(params[0].lr_mult == 0.5f);
  CHECK(params[0].decay_mult == 0.f);
  CHECK(params[1].lr_mult == 2.f);
  CHECK(net->loss_weights() == std::vector<std::pair<std::string, float>>{{"loss", 1.f}});
  net->forward({{"data", Tensor::from_vector<float>({1, 2, 3, 0, -1, 1}, {2, 3})}, {"target", Tensor::zeros({2, 3})}});
  CHECK(net->blob("s").to_vector<float>() == std::vector<float>{3, 5, 7, 1, -1, 3});
  CHECK(net->loss().item() == doctest::Approx(23.5));
  net->loss().backward();
  CHECK(params[0].value.grad().to_vector<float>() == std::vector<float>{1.5f, 5.5f, 12.f});
  CHECK(params[1].value.grad().to_vector<float>() == std::vector<float>{2.f, 2.f, 5.f});
}

TEST_CASE("loss_weight scales loss tops and makes any top a loss") {
  auto net = build(
      "layer { name: \"data\" type: \"Input\" top: \"data\" top: \"target\" input_param { shape { dim: 2 dim: 3 } } }\n"
      "layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"data\" bottom: \"target\" top: \"loss\" loss_weight: 0.5 }\n"
      "layer { name: \"r\" type: \"ReLU\" bottom: \"data\" top: \"r\" loss_weight: 2 }\n");
  net->forward({{"data", Tensor::from_vector<float>({1, 2, 3, 0, -1, 1}, {2, 3})}, {"target", Tensor::zeros({2, 3})}});
  // 0.5 * (1+4+9+0+1+1)/4 + 2 * (1+2+3+0+0+1)
  CHECK(net->loss().item() == doctest::Approx(0.5 * 4 + 2 * 7));
  CHECK(build_error(std::string(kInput23) + "layer { name: \"r\" type: \"ReLU\" bottom: \"data\" top: \"r\" loss_weight: 1 loss_weight: 2 }") ==
        "net.prototxt:2: layer 'r' (ReLU): 2 loss_weight values for 1 tops (give one per top)");
}

TEST_CASE("weight sharing by param name: one tensor, gradients of both uses summed") {
  std::string text =
      "layer { name: \"data\" type: \"Input\" top: \"a\" top: \"b\" input_param { shape { dim: 2 dim: 3 } } }\n"
      "layer { name: \"sa\" type: \"Scale\" bottom: \"a\" top: \"xa\" param { name: \"g\" }\n"
      "  scale_param { filler { type: \"uniform\" min: -1 max: 1 } } }\n"
      "layer { name: \"sb\" type: \"Scale\" bottom: \"b\" top: \"xb\" param { name: \"g\" }\n"
      "  scale_param { filler { type: \"uniform\" min: -1 max: 1 } } }\n"
      "layer { name: \"prod\" type: \"Eltwise\" bottom: \"xa\" bottom: \"xb\" top: \"y\" eltwise_param { operation: PROD } }\n";
  auto net = build(text, proto::TRAIN, DType::f64);
  REQUIRE(net->learnable_params().size() == 1);
  Tensor g = net->learnable_params()[0].value;  // a handle: learnable_params() returns a temporary
  CHECK(net->layer("sa")->param(0).same(net->layer("sb")->param(0)));
  CHECK(net->learnable_params()[0].name == "sa.gamma");
  Generator gen(3);
  Tensor a = testing::random_input({2, 3}, gen), b = testing::random_input({2, 3}, gen);
  // y = (a g)(b g): dy/dg = 2 a b g, the sum of both uses.
  net->forward({{"a", a}, {"b", b}});
  sum(net->blob("y")).backward();
  auto av = a.to_vector<double>(), bv = b.to_vector<double>(), gv = g.to_vector<double>();
  auto grad = g.grad().to_vector<double>();
  for (int c = 0; c < 3; ++c)
    CHECK(grad[c] == doctest::Approx(2 * gv[c] * (av[c] * bv[c] + av[3 + c] * bv[3 + c])));
  CHECK_GRAD([&](const TensorList& in) { return net->forward({{"a", in[0]}, {"b", in[1]}}).at("y"); }, {a, b, g});

  std::string mismatch =
      "layer { name: \"data\" type: \"Input\" top: \"a\" top: \"b\" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 4 } } }\n"
      "layer { name: \"sa\" type: \"Scale\" bottom: \"a\" top: \"xa\" param { name: \"g\" } }\n"
      "layer { name: \"sb\" type: \"Scale\" bottom: \"b\" top: \"xb\" param { name: \"g\" } }\n";
  CHECK(build_error(mismatch) == "net.prototxt:3: layer 'sb' (Scale): shared parameter 'g' has shape [4] here but [3] in layer 'sa'");
}

TEST_CASE("a TEST net shares the TRAIN net's parameters by name") {
  std::string text = std::string(kInput23) +
                     "layer { name: \"sc\" type: \"Scale\" bottom: \"data\" top: \"s\" scale_param { bias_term: true "
                     "filler { type: \"gaussian\" } } }\n"
                     "layer { name: \"t\" type: \"TanH\" bottom: \"s\" top: \"t\" include { phase: TEST } }\n";
  auto train = build(text, proto::TRAIN);
  auto test = build(text, proto::TEST, DType::f32, train.get());
  REQUIRE(test->params().size() == 2);
  CHECK(test->params()[0].value.same(train->params()[0].value));
  CHECK(test->params()[1].value.same(train->params()[1].value));
}

TEST_CASE("same seed, same parameters; different seed, different parameters") {
  std::string text = std::string(kInput23) +
                     "layer { name: \"sc\" type: \"Scale\" bottom: \"data\" top: \"s\" scale_param { filler { type: \"gaussian\" } } }\n";
  proto::NetParameter p = read_net_text(text, "n");
  Net a(p, proto::TRAIN, Device::cpu(), 5), b(p, proto::TRAIN, Device::cpu(), 5), c(p, proto::TRAIN, Device::cpu(), 6);
  CHECK(a.params()[0].value.to_vector<float>() == b.params()[0].value.to_vector<float>());
  CHECK(a.params()[0].value.to_vector<float>() != c.params()[0].value.to_vector<float>());
}

TEST_CASE("a Caffe deploy prototxt with input + input_shape (or input_dim) parses and builds") {
  std::string deploy =
      "name: \"deploy\"\ninput: \"data\"\ninput_shape { dim: 1 dim: 3 dim: 4 dim: 4 }\n"
      "layer { name: \"relu\" type: \"ReLU\" bottom: \"data\" top: \"data\" }\n"
      "layer { name: \"flat\" type: \"Flatten\" bottom: \"data\" top: \"flat\" }\n";
  auto net = build(deploy, proto::TEST);
  CHECK(net->inputs() == std::vector<std::pair<std::string, Shape>>{{"data", {1, 3, 4, 4}}});
  CHECK(net->blob_shape("flat") == Shape{1, 48});
  CHECK(net->output_names() == std::vector<std::string>{"flat"});
  auto blobs = net->forward({{"data", Tensor::full({1, 3, 4, 4}, -1.0)}});
  CHECK(blobs.at("flat").to_vector<float>() == std::vector<float>(48, 0.f));
  CHECK_THROWS_WITH_AS(net->forward(), "Net::forward: no tensor given for input 'data' (shape [1, 3, 4, 4])", Error);

  auto old = build("input: \"data\"\ninput_dim: 2\ninput_dim: 3\ninput_dim: 5\ninput_dim: 7\n"
                   "layer { name: \"t\" type: \"TanH\" bottom: \"data\" top: \"t\" }\n");
  CHECK(old->blob_shape("t") == Shape{2, 3, 5, 7});
  CHECK(build_error("input: \"data\"\ninput_dim: 2\n") ==
        "net.prototxt: 1 input(s) need as many input_shape blocks or 4 input_dim values each, got 0 input_shape and 1 input_dim");
}

TEST_CASE("errors in forward name the input or the layer") {
  auto net = build("layer { name: \"data\" type: \"Input\" top: \"a\" top: \"b\" input_param { shape { dim: 2 dim: 3 } } }\n"
                   "layer { name: \"sum\" type: \"Eltwise\" bottom: \"a\" bottom: \"b\" top: \"c\" }\n");
  // A fed tensor must have its declared shape: refused at the input, not layers later.
  CHECK_THROWS_WITH_AS(net->forward({{"a", Tensor::zeros({2, 3})}, {"b", Tensor::zeros({4, 5})}}),
                       "net '' (net.prototxt): input 'b' has shape [4, 5], the net declares [2, 3]", Error);
  CHECK_THROWS_WITH_AS(net->forward({{"a", Tensor::zeros({2, 3})}, {"b", Tensor::zeros({2, 3})}, {"x", Tensor::zeros({1})}}),
                       "net '' (net.prototxt): no input named 'x' (its inputs: a [2, 3], b [2, 3])", Error);
  CHECK_THROWS_WITH_AS(net->forward({{"a", Tensor::zeros({2, 3})}, {"b", Tensor::zeros({2, 3})}}, -1),
                       "net '' (net.prototxt): batch index -1 is negative", Error);
  CHECK_THROWS_WITH_AS(net->forward({{"a", Tensor::zeros({2, 3})}}),
                       "layer 'data' (Input): no tensor given for input 'b' (pass it to Net::forward by name)", Error);
}

TEST_CASE("net defaults fill what a layer leaves unset") {
  auto net = build(
      "defaults { weight_filler { type: \"xavier\" } bias_filler { type: \"constant\" value: 0.1 } modalities: 2 "
      "use_global_stats: true }\n" + std::string(kInput23) +
      "layer { name: \"a\" type: \"Scale\" bottom: \"data\" top: \"a\" convolution_param { num_output: 3 } loss_param { } }\n"
      "layer { name: \"b\" type: \"Scale\" bottom: \"data\" top: \"b\" convolution_param { weight_filler { type: \"msra\" } }\n"
      "  loss_param { modalities: 3 } }\n");
  const auto& a = net->layer("a")->layer_param();
  CHECK(a.convolution_param().weight_filler().type() == "xavier");
  CHECK(a.convolution_param().bias_filler().value() == doctest::Approx(0.1));
  CHECK(a.loss_param().modalities() == 2);
  CHECK_FALSE(a.scale_param().has_bias_filler());  // Scale's beta is not a weight's bias
  const auto& b = net->layer("b")->layer_param();
  CHECK(b.convolution_param().weight_filler().type() == "msra");
  CHECK(b.loss_param().modalities() == 3);
}

TEST_CASE("summary lists layers, shapes, parameter counts and totals") {
  auto net = build(std::string(kInput23) +
                   "layer { name: \"scale1\" type: \"Scale\" bottom: \"data\" top: \"s\" scale_param { bias_term: true } }\n"
                   "layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"s\" bottom: \"data\" top: \"loss\" }\n");
  std::string s = net->summary();
  INFO(s);
  CHECK(s.find("Net '' (TRAIN, cpu, float32): 3 layers") != std::string::npos);
  CHECK(s.find("scale1  Scale") != std::string::npos);
  CHECK(s.find("s [2, 3]") != std::string::npos);
  CHECK(s.find("Parameters: 6 learnable") != std::string::npos);
  CHECK(s.find("Outputs: loss") != std::string::npos);
  CHECK(s.find("Activations: ") != std::string::npos);
}

TEST_CASE("memory is estimated at set-up: what cannot fit is refused before it is allocated") {
  const double memory = device_memory_bytes(Device::cpu());
  REQUIRE(memory > 0);
  // One input of 1e12 elements, a data layer of a 2e9 batch, a weight of 1e13 elements.
  std::string huge = build_error("input: 'data' input_shape { dim: 1000000 dim: 1000000 }\n");
  CHECK(huge.find("input 'data' [1000000, 1000000] needs 3.64 TiB, more than the") != std::string::npos);
  std::string batch = build_error(
      "layer { name: 'rgbd' type: 'SyntheticRgbdData' top: 'data' top: 'label' "
      "synthetic_rgbd_param { batch_size: 2000000000 } }\n");
  CHECK(batch.find("layer 'rgbd' (SyntheticRgbdData): top 'data' [4000000000, ") != std::string::npos);
  CHECK(batch.find("more than the " + bytes_str(memory) + " of memory of cpu") != std::string::npos);
  std::string weight = build_error("layer { name: 'in' type: 'Input' top: 'data' input_param { shape { dim: 2 dim: 1000 } } }\n"
                                   "layer { name: 'fc' type: 'InnerProduct' bottom: 'data' top: 'fc' "
                                   "inner_product_param { num_output: 2000000000 } }\n");
  CHECK(weight.find("layer 'fc' (InnerProduct)") != std::string::npos);
  CHECK(weight.find("parameter 'weight' [2000000000, 1000] needs 7.28 TiB") != std::string::npos);
  CHECK(build_error("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 4 dim: 0 } } }\n")
            .find("input shape [4, 0] has a dim <= 0") != std::string::npos);
  // Each blob fits, all of them together do not: refused at the first forward, naming the largest.
  int64_t n = static_cast<int64_t>(memory * 0.4 / 4);
  auto net = build("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: " + std::to_string(n) +
                   " } } }\nlayer { name: 'a' type: 'TanH' bottom: 'x' top: 'a' }\n"
                   "layer { name: 'b' type: 'TanH' bottom: 'a' top: 'b' }\n");
  std::string msg;
  try {
    net->forward({});
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("one forward keeps") != std::string::npos);
  CHECK(msg.find("more than the " + bytes_str(memory) + " of memory of cpu") != std::string::npos);
}
