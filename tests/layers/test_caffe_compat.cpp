// Caffe compatibility: a LeNet written the way Caffe's MNIST example lays it out (Input layer
// variant and deploy-style `input:` variant) parses, builds and runs forward and backward;
// models/lenet parses with the phases it declares.
#include <cmath>
#include <filesystem>
#include <set>

#include "core/net.h"
#include "doctest/doctest.h"
#include "tests/temp_dir.h"

using namespace mmfuse;

namespace {

// The body of Caffe's LeNet after the data: conv-pool-conv-pool-ip-relu-ip, xavier weights,
// constant biases, bias learning rate doubled.
const char* kLeNetBody = R"(layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  param {
    lr_mult: 1
  }
  param {
    lr_mult: 2
  }
  convolution_param {
    num_output: 20
    kernel_size: 5
    stride: 1
    weight_filler {
      type: "xavier"
    }
    bias_filler {
      type: "constant"
    }
  }
}
layer {
  name: "pool1"
  type: "Pooling"
  bottom: "conv1"
  top: "pool1"
  pooling_param {
    pool: MAX
    kernel_size: 2
    stride: 2
  }
}
layer {
  name: "conv2"
  type: "Convolution"
  bottom: "pool1"
  top: "conv2"
  param {
    lr_mult: 1
  }
  param {
    lr_mult: 2
  }
  convolution_param {
    num_output: 50
    kernel_size: 5
    stride: 1
    weight_filler {
      type: "xavier"
    }
    bias_filler {
      type: "constant"
    }
  }
}
layer {
  name: "pool2"
  type: "Pooling"
  bottom: "conv2"
  top: "pool2"
  pooling_param {
    pool: MAX
    kernel_size: 2
    stride: 2
  }
}
layer {
  name: "ip1"
  type: "InnerProduct"
  bottom: "pool2"
  top: "ip1"
  param {
    lr_mult: 1
  }
  param {
    lr_mult: 2
  }
  inner_product_param {
    num_output: 500
    weight_filler {
      type: "xavier"
    }
    bias_filler {
      type: "constant"
    }
  }
}
layer {
  name: "relu1"
  type: "ReLU"
  bottom: "ip1"
  top: "ip1"
}
layer {
  name: "ip2"
  type: "InnerProduct"
  bottom: "ip1"
  top: "ip2"
  param {
    lr_mult: 1
  }
  param {
    lr_mult: 2
  }
  inner_product_param {
    num_output: 10
    weight_filler {
      type: "xavier"
    }
    bias_filler {
      type: "constant"
    }
  }
}
)";

const char* kInputLayers = R"(name: "LeNet"
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param { shape: { dim: 4 dim: 1 dim: 28 dim: 28 } }
}
layer {
  name: "label"
  type: "Input"
  top: "label"
  input_param { shape: { dim: 4 } }
}
)";

const char* kLoss = R"(layer {
  name: "loss"
  type: "SoftmaxWithLoss"
  bottom: "ip2"
  bottom: "label"
  top: "loss"
}
)";

const char* kDeployInputs = R"(name: "LeNet"
input: "data"
input_shape {
  dim: 4
  dim: 1
  dim: 28
  dim: 28
}
)";

const char* kProb = R"(layer {
  name: "prob"
  type: "Softmax"
  bottom: "ip2"
  top: "prob"
}
)";

void check_lenet_shapes(const Net& net) {
  CHECK(net.blob_shape("conv1") == Shape{4, 20, 24, 24});
  CHECK(net.blob_shape("pool1") == Shape{4, 20, 12, 12});
  CHECK(net.blob_shape("conv2") == Shape{4, 50, 8, 8});
  CHECK(net.blob_shape("pool2") == Shape{4, 50, 4, 4});
  CHECK(net.blob_shape("ip1") == Shape{4, 500});
  CHECK(net.blob_shape("ip2") == Shape{4, 10});
  // 20*25 + 20 + 50*20*25 + 50 + 500*800 + 500 + 10*500 + 10
  CHECK(net.num_learnable() == 431080);
}

Tensor images(uint64_t seed) {
  Generator gen(seed);
  return Tensor::rand({4, 1, 28, 28}, gen);
}

}  // namespace

TEST_CASE("Caffe LeNet with Input layers: parses, builds, forward and backward") {
  std::string text = std::string(kInputLayers) + kLeNetBody + kLoss;
  Net net(read_net_text(text, "lenet_train.prototxt"), proto::TRAIN, Device::cpu(), 1);
  check_lenet_shapes(net);
  CHECK(net.layer("conv1")->params()[1].lr_mult == 2.f);
  // Caffe's constant bias filler (0) is honoured when given explicitly.
  CHECK(net.layer("conv1")->param(1).to_vector<float>() == std::vector<float>(20, 0.f));
  Tensor label = Tensor::from_vector(std::vector<int32_t>{3, 1, 4, 1}, {4}, DType::i32);
  net.forward({{"data", images(2)}, {"label", label}});
  double loss = net.loss().item();
  CHECK(std::isfinite(loss));
  CHECK(loss > 1.0);  // near log(10) at initialisation
  CHECK(loss < 4.0);
  net.loss().backward();
  for (const auto& p : net.learnable_params()) {
    INFO(p.name);
    REQUIRE(p.value.grad().defined());
    double norm = 0;
    for (float g : p.value.grad().to_vector<float>()) norm += static_cast<double>(g) * g;
    CHECK(norm > 0);
  }
}

TEST_CASE("Caffe LeNet deploy style: input/input_shape and input_dim") {
  std::string text = std::string(kDeployInputs) + kLeNetBody + kProb;
  Net net(read_net_text(text, "lenet_deploy.prototxt"), proto::TEST, Device::cpu(), 1);
  check_lenet_shapes(net);
  REQUIRE(net.inputs().size() == 1);
  CHECK(net.inputs()[0].first == "data");
  CHECK(net.output_names() == std::vector<std::string>{"prob"});
  auto blobs = net.forward({{"data", images(3)}});
  auto p = blobs.at("prob").to_vector<float>();
  for (int n = 0; n < 4; ++n) {
    double s = 0;
    for (int k = 0; k < 10; ++k) s += p[n * 10 + k];
    CHECK(s == doctest::Approx(1).epsilon(1e-5));
  }
  // The older four input_dim values.
  std::string dims = "name: \"LeNet\"\ninput: \"data\"\ninput_dim: 4\ninput_dim: 1\ninput_dim: 28\ninput_dim: 28\n";
  Net old(read_net_text(dims + kLeNetBody + kProb, "lenet_dims.prototxt"), proto::TEST, Device::cpu(), 1);
  check_lenet_shapes(old);
  // The same seed gives the same weights, so the same probabilities.
  CHECK(old.forward({{"data", images(3)}}).at("prob").to_vector<float>() == p);
}

TEST_CASE("models/lenet: the prototxts parse, with TRAIN and TEST phases") {
  std::filesystem::path dir = mmfuse::testing::source_root() / "models" / "lenet";
  proto::NetParameter net = read_net((dir / "lenet_train_val.prototxt").string());
  auto names = [&](proto::Phase phase) {
    proto::NetState state;
    state.set_phase(phase);
    std::set<std::string> types;
    for (const auto& l : net.layer())
      if (layer_included(l, state)) types.insert(l.type());
    return types;
  };
  auto train = names(proto::TRAIN), test = names(proto::TEST);
  CHECK(train.count("FashionMnistData"));
  CHECK(train.count("SoftmaxWithLoss"));
  CHECK(!train.count("Accuracy"));
  CHECK(test.count("Accuracy"));
  CHECK(test.count("FashionMnistData"));
  proto::SolverParameter solver = read_solver((dir / "lenet_solver.prototxt").string());
  CHECK(solver.net() == "lenet_train_val.prototxt");  // relative to the solver, as models/ do
  CHECK(solver.test_iter(0) == 157);
  CHECK(solver.solver_mode() == proto::SolverParameter::CPU);
  // The deploy net has only layers that exist here: it builds.
  Net deploy(read_net((dir / "lenet_deploy.prototxt").string()), proto::TEST);
  CHECK(deploy.blob_shape("prob") == Shape{1, 10});
}
