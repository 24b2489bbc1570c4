// Caffe's files as Caffe reads them: V1 nets upgraded on load, a loss layer without a top,
// repeated layer names, layer types mmfuse lacks named as such, the deprecated solver_type,
// snapshot_format, and the AdaGrad / RMSProp / AdaDelta solvers (against torch.optim's steps).
#include <cmath>
#include <memory>

#include "core/net.h"
#include "core/optimizer.h"
#include "core/prototxt.h"
#include "tests/gradcheck.h"

using namespace mmfuse;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// A small net in Caffe's V1 format: blobs_lr / weight_decay per blob, a shared weight by
// `param`, phase rules, enum types.
const char* kV1Net = R"(name: "v1"
input: "data"
input_dim: 2
input_dim: 1
input_dim: 6
input_dim: 6
input: "label"
input_dim: 2
input_dim: 1
input_dim: 1
input_dim: 1
layers {
  name: "conv1"
  type: CONVOLUTION
  bottom: "data"
  top: "conv1"
  blobs_lr: 1
  blobs_lr: 2
  weight_decay: 1
  weight_decay: 0
  convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } }
}
layers {
  name: "relu1"
  type: RELU
  bottom: "conv1"
  top: "conv1"
}
layers {
  name: "norm1"
  type: LRN
  bottom: "conv1"
  top: "norm1"
  lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 }
}
layers {
  name: "ip"
  type: INNER_PRODUCT
  bottom: "norm1"
  top: "ip"
  param: "shared_w"
  inner_product_param { num_output: 4 }
}
layers {
  name: "loss"
  type: SOFTMAX_LOSS
  bottom: "ip"
  bottom: "label"
  top: "loss"
  include { phase: TRAIN }
}
)";

}  // namespace

TEST_CASE("a V1 net (layers { type: CONVOLUTION }) is upgraded on load as Caffe upgrades it") {
  proto::NetParameter net = read_net_text(kV1Net, "v1.prototxt");
  REQUIRE(net.layer_size() == 5);
  CHECK(net.layers_size() == 0);
  const proto::LayerParameter& conv = net.layer(0);
  CHECK(conv.type() == "Convolution");
  CHECK(conv.source_line() == 12);
  REQUIRE(conv.param_size() == 2);
  CHECK(conv.param(0).lr_mult() == 1);
  CHECK(conv.param(1).lr_mult() == 2);
  CHECK(conv.param(0).decay_mult() == 1);
  CHECK(conv.param(1).decay_mult() == 0);
  CHECK(conv.convolution_param().num_output() == 3);
  CHECK(net.layer(1).type() == "ReLU");
  CHECK(net.layer(2).type() == "LRN");
  CHECK(net.layer(2).lrn_param().local_size() == 3);
  CHECK(net.layer(3).param(0).name() == "shared_w");
  CHECK(net.layer(4).type() == "SoftmaxWithLoss");
  CHECK(net.layer(4).include(0).phase() == proto::TRAIN);

  Net train(net, proto::TRAIN);
  CHECK(train.layers().size() == 5);
  CHECK(train.loss_weights().size() == 1);
  std::vector<Param> ps = train.learnable_params();
  REQUIRE(ps.size() == 4);
  CHECK(ps[1].name == "conv1.bias");
  CHECK(ps[1].lr_mult == 2);
  CHECK(ps[1].decay_mult == 0);
  Net test(net, proto::TEST);
  CHECK(test.layers().size() == 4);
  // An error in an upgraded layer still names its line.
  std::string bad = kV1Net;
  bad.replace(bad.find("local_size: 3"), 13, "local_size: 4");
  CHECK(error_of([&] { Net n(read_net_text(bad, "v1.prototxt"), proto::TEST); }) ==
        "v1.prototxt:29: layer 'norm1' (LRN): local_size must be odd, got 4");
  CHECK(error_of([&] {
          read_net_text(std::string(kV1Net) + "layer { name: \"r\" type: \"ReLU\" bottom: \"ip\" top: \"ip\" }\n",
                        "mixed.prototxt");
        }) == "mixed.prototxt: the net mixes `layer` (current) and `layers` (Caffe's V1) entries; use one format");
}

TEST_CASE("a layer type mmfuse lacks is named as such, not as an unknown *_param field") {
  const std::string input =
      "layer { name: \"data\" type: \"Input\" top: \"data\" input_param { shape { dim: 1 dim: 2 } } }\n";
  std::string python = error_of([&] {
    read_net_text(input + "layer {\n  name: \"py\"\n  type: \"Python\"\n  bottom: \"data\"\n  top: \"out\"\n"
                          "  python_param { module: \"m\" layer: \"L\" }\n}\n",
                  "py.prototxt");
  });
  CHECK(python.starts_with("py.prototxt:2: layer 'py': layer type 'Python' is not supported by mmfuse (a Python layer"));
  CHECK(python.find("; supported types: Accuracy, BatchNorm, ") != std::string::npos);
  CHECK(python.find("LRN") != std::string::npos);
  // The same in a V1 net.
  std::string window = error_of([&] {
    read_net_text("layers {\n  name: \"w\"\n  type: WINDOW_DATA\n  window_data_param { source: \"w.txt\" }\n}\n",
                  "w.prototxt");
  });
  CHECK(window.starts_with("w.prototxt:1: layer 'w': layer type 'WindowData' is not supported by mmfuse (R-CNN's"));
  // In a solver's inline net (Caffe's lenet_consolidated_solver holds a V1 net so).
  CHECK(error_of([] {
          read_solver_text("base_lr: 0.1\nnet_param {\n  name: \"inline\"\n  layers {\n    name: \"py\"\n"
                           "    type: WINDOW_DATA\n    window_data_param { source: \"w\" }\n  }\n}\n",
                           "inline_solver.prototxt");
        }).starts_with("inline_solver.prototxt:4: layer 'py': layer type 'WindowData' is not supported by mmfuse"));
  // Without a *_param the net names it when building.
  CHECK(error_of([&] {
          Net n(read_net_text(input + "layer { name: \"b\" type: \"BNLL\" bottom: \"data\" top: \"b\" }\n", "b.prototxt"),
                proto::TEST);
        }).starts_with("layer 'b' (b.prototxt:2): layer type 'BNLL' is not supported by mmfuse; supported types: "));
  // A misspelt field of a layer we have keeps its suggestion.
  CHECK(error_of([&] {
          read_net_text(input + "layer { name: \"r\" type: \"ReLU\" bottom: \"data\" top: \"r\" relu_parm { } }\n",
                        "r.prototxt");
        }) == "r.prototxt:2:56: unknown field 'relu_parm' in LayerParameter; did you mean 'relu_param'?");
}

TEST_CASE("a loss layer without a top gets one; a repeated layer name is accepted (Caffe's rules)") {
  const std::string text = R"(
layer { name: "in" type: "Input" top: "x" top: "y" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "h" inner_product_param { num_output: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "h" top: "z" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "z" bottom: "y" }
)";
  Net net(read_net_text(text, "auto.prototxt"), proto::TRAIN, Device::cpu(), 1, nullptr, DType::f64);
  REQUIRE(net.loss_weights().size() == 1);
  CHECK(net.loss_weights()[0].first == "loss (automatic)");
  CHECK(net.loss_weights()[0].second == 1);
  std::vector<Param> ps = net.learnable_params();
  REQUIRE(ps.size() == 4);
  CHECK(ps[0].name == "ip.weight");
  CHECK(ps[2].name == "ip#2.weight");
  CHECK(net.layer("ip") == net.layers()[2].get());  // the last, as Caffe's layer_by_name
  Generator gen(2);
  Tensor x = testing::random_input({2, 3}, gen), y = testing::random_input({2, 3}, gen);
  net.forward({{"x", x}, {"y", y}});
  Tensor z = net.blob("z");
  double expect = 0;
  std::vector<double> zv = z.to_vector<double>(), yv = y.to_vector<double>();
  for (size_t i = 0; i < zv.size(); ++i) expect += (zv[i] - yv[i]) * (zv[i] - yv[i]);
  CHECK(net.loss().item() == doctest::Approx(expect / 4));
  // The TEST net built beside it shares each layer's own tensors.
  Net test(read_net_text(text, "auto.prototxt"), proto::TEST, Device::cpu(), 1, &net, DType::f64);
  CHECK(test.learnable_params()[2].value.unsafe_impl() == ps[2].value.unsafe_impl());
}

TEST_CASE("Caffe's solver fields: the deprecated solver_type, snapshot_format, the adaptive solvers' checks") {
  proto::SolverParameter s = read_solver_text("net: \"n.prototxt\"\nsolver_type: ADADELTA\nsnapshot_format: HDF5\n"
                                              "layer_wise_reduce: false\n",
                                              "s.prototxt");
  CHECK(s.type() == "AdaDelta");
  CHECK(!s.has_solver_type());
  CHECK(s.snapshot_format() == proto::SolverParameter::HDF5);
  CHECK(error_of([] { read_solver_text("solver_type: NESTEROV\ntype: \"SGD\"\n", "old.prototxt"); }) ==
        "old.prototxt: solver_type NESTEROV (deprecated) and type 'SGD' disagree; set only type");
  proto::SolverParameter adagrad;
  adagrad.set_type("AdaGrad");
  adagrad.set_momentum(0.9f);
  CHECK(error_of([&] { check_solver_type(adagrad); }) ==
        "momentum cannot be used with AdaGrad (got 0.9; set it to 0 or leave it out)");
}

TEST_CASE("AdaGrad, RMSProp, AdaDelta: three steps as torch.optim's Adagrad, RMSprop, Adadelta") {
  // w = torch.tensor([1.0, -2.0]); grads (0.5, -1), (0.2, 0.3), (-0.4, 0.1); weight_decay 0.01;
  // Adagrad(lr=0.1, eps=1e-6), RMSprop(lr=0.1, alpha=0.98, eps=1e-6), Adadelta(lr=0.5,
  // rho=0.95, eps=1e-6), in float64. Caffe: delta = eps, rms_decay = alpha, momentum = rho.
  struct Case {
    const char* type;
    double lr, momentum, rms_decay;
    std::vector<double> expect;
  };
  for (const Case& c : {Case{"AdaGrad", 0.1, 0, 0.99, {0.9199778119520039, -1.934168388090269}},
                        Case{"RMSProp", 0.1, 0, 0.98, {0.450557634586649, -1.5440000351868786}},
                        Case{"AdaDelta", 0.5, 0.95, 0.99, {0.9985326393999938, -1.998877831744081}}}) {
    INFO(c.type);
    proto::SolverParameter s;
    s.set_type(c.type);
    s.set_momentum(static_cast<float>(c.momentum));
    s.set_rms_decay(static_cast<float>(c.rms_decay));
    s.set_delta(1e-6f);
    s.set_weight_decay(0.01f);
    Tensor w = Tensor::from_vector<double>({1.0, -2.0}, {2});
    w.set_requires_grad();
    Optimizer opt(s, {{"w", w, 1, 1}});
    for (const std::vector<double>& g : {std::vector<double>{0.5, -1.0}, {0.2, 0.3}, {-0.4, 0.1}}) {
      w.set_grad(Tensor::from_vector(g, {2}));
      opt.step(c.lr);
    }
    // The solver's float32 fields (0.98f, 0.95f, 1e-6f, 0.01f) against torch's float64 ones.
    testing::check_close(w.to_vector<double>(), c.expect, 1e-6);
    // Its state round-trips: a copy continues bit-exactly.
    proto::SolverState state;
    opt.save_state(state);
    CHECK(state.history_size() == (std::string(c.type) == "AdaDelta" ? 2 : 1));
    Tensor w2 = w.detach().clone();
    w2.set_requires_grad();
    Optimizer copy(s, {{"w", w2, 1, 1}});
    copy.load_state(state);
    for (auto [o, t] : {std::pair{&opt, w}, std::pair{&copy, w2}}) {
      t.set_grad(Tensor::from_vector<double>({0.3, -0.2}, {2}));
      o->step(c.lr);
    }
    CHECK(w.to_vector<double>() == w2.to_vector<double>());
  }
}
