// .caffemodel weights (core/caffemodel.h): V2 `layer` and V1 `layers` files built here, blobs
// with shapes and with Caffe's legacy num/channels/height/width, float and double values,
// BatchNorm's sums divided by the scale factor, the report of what matched, was missing, had
// the wrong shape or was unused; `mmfuse forward` and `mmfuse test` taking one by --weights.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/caffemodel.h"
#include "core/net.h"
#include "core/npy.h"
#include "core/snapshot.h"
#include "doctest/doctest.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
using mmfuse::testing::TempDir;

namespace {

const char* kInput = "name: 'small'\n"
    "layer { name: 'in' type: 'Input' top: 'data' input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }\n";
const char* kBody = R"(layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1'
        convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: 'bn1' type: 'BatchNorm' bottom: 'conv1' top: 'conv1' }
layer { name: 'scale1' type: 'Scale' bottom: 'conv1' top: 'conv1' scale_param { bias_term: true } }
layer { name: 'ip1' type: 'InnerProduct' bottom: 'conv1' top: 'ip1' inner_product_param { num_output: 3 } }
)";

Net make_net() {
  proto::NetParameter p;
  parse_text(std::string(kInput) + kBody, "<net>", p);
  return Net(p, proto::TEST);
}

// Values 0.01 * (seed + i): every blob distinct.
std::vector<float> ramp(size_t n, float seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.01f * (seed + static_cast<float>(i));
  return v;
}

void set_shape(caffe::BlobProto& b, const Shape& s, bool legacy) {
  if (legacy) {
    Shape padded(4 - s.size(), 1);
    padded.insert(padded.end(), s.begin(), s.end());
    b.set_num(static_cast<int>(padded[0]));
    b.set_channels(static_cast<int>(padded[1]));
    b.set_height(static_cast<int>(padded[2]));
    b.set_width(static_cast<int>(padded[3]));
  } else {
    for (int64_t d : s) b.mutable_shape()->add_dim(d);
  }
}

void add_blob(google::protobuf::RepeatedPtrField<caffe::BlobProto>* blobs, const Shape& s,
              const std::vector<float>& values, bool legacy = false, bool as_double = false) {
  caffe::BlobProto* b = blobs->Add();
  set_shape(*b, s, legacy);
  for (float v : values) {
    if (as_double) {
      b->add_double_data(v);
    } else {
      b->add_data(v);
    }
  }
}

// The blobs of the small net's layers, as Caffe would store them. `v1`: the V1 `layers` list
// with legacy 4-d shapes throughout.
caffe::NetParameter caffe_net(bool v1) {
  caffe::NetParameter net;
  net.set_name("small");
  auto layer = [&](const std::string& name) {
    if (v1) {
      auto* l = net.add_layers();
      l->set_name(name);
      l->set_type(4);  // V1 CONVOLUTION, or anything: the net being loaded says what each blob is
      return l->mutable_blobs();
    }
    auto* l = net.add_layer();
    l->set_name(name);
    l->set_type("X");
    return l->mutable_blobs();
  };
  auto* conv = layer("conv1");
  add_blob(conv, {2, 3, 3, 3}, ramp(54, 1), v1);
  add_blob(conv, {2}, ramp(2, 100), v1, /*as_double=*/true);
  auto* bn = layer("bn1");
  add_blob(bn, {2}, {4.f, 8.f}, v1);   // sums
  add_blob(bn, {2}, {2.f, 6.f}, v1);
  add_blob(bn, {1}, {2.f}, v1);        // scale factor
  auto* sc = layer("scale1");
  add_blob(sc, {2}, {1.5f, 2.5f}, v1);
  add_blob(sc, {2}, {0.25f, -0.25f}, v1);
  auto* ip = layer("ip1");
  add_blob(ip, {3, 8}, ramp(24, 7), /*legacy=*/true);  // Caffe's old InnerProduct: 1 x 1 x 3 x 8
  add_blob(ip, {3}, ramp(3, 50), /*legacy=*/true);
  auto* extra = layer("fc_old");  // a layer this net does not have
  add_blob(extra, {5}, ramp(5, 0), v1);
  layer("relu_no_blobs");
  return net;
}

void write(const caffe::NetParameter& net, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  REQUIRE(net.SerializeToOstream(&out));
}

std::vector<float> values(const Net& net, const std::string& param) {
  for (const Param& p : net.params())
    if (p.name == param) return p.value.to_vector<float>();
  FAIL("no parameter ", param);
  return {};
}

void check_loaded(const Net& net, const CopyReport& r) {
  CHECK(r.loaded.size() == 9);  // conv 2, bn 3, scale 2, ip 2
  CHECK(r.missing.empty());
  CHECK(r.mismatched.empty());
  CHECK(r.unused == std::vector<std::string>{"fc_old.blob0"});
  CHECK(values(net, "conv1.weight") == ramp(54, 1));
  CHECK(values(net, "conv1.bias") == ramp(2, 100));
  CHECK(values(net, "bn1.mean") == std::vector<float>{2.f, 4.f});      // sum / factor
  CHECK(values(net, "bn1.variance") == std::vector<float>{1.f, 3.f});
  CHECK(values(net, "bn1.scale_factor") == std::vector<float>{2.f});
  CHECK(values(net, "scale1.gamma") == std::vector<float>{1.5f, 2.5f});
  CHECK(values(net, "scale1.beta") == std::vector<float>{0.25f, -0.25f});
  CHECK(values(net, "ip1.weight") == ramp(24, 7));
  CHECK(values(net, "ip1.bias") == ramp(3, 50));
  CHECK(r.table().find("Caffe .caffemodel of 'small'") != std::string::npos);
}

}  // namespace

TEST_CASE("caffemodel: V2 and V1 files load by layer name, legacy shapes and BatchNorm sums converted") {
  TempDir tmp("caffemodel");
  for (bool v1 : {false, true}) {
    CAPTURE(v1);
    const std::string path = tmp / (v1 ? "v1.caffemodel" : "v2.caffemodel");
    write(caffe_net(v1), path);
    Net net = make_net();
    CopyReport r = load_weights(net, path, /*strict=*/true);
    check_loaded(net, r);
    CHECK(r.source.find(v1 ? "V1 `layers`" : "V2 `layer`") != std::string::npos);
  }
  SUBCASE("a .caffemodel under another name is recognised by its contents; our own format still loads") {
    write(caffe_net(false), tmp / "weights.bin");
    Net net = make_net();
    check_loaded(net, load_weights(net, tmp / "weights.bin"));
    save_weights(net, tmp / "own.weights");
    Net again = make_net();
    CopyReport own = load_weights(again, tmp / "own.weights");
    CHECK(own.source.empty());
    CHECK(values(again, "bn1.mean") == std::vector<float>{2.f, 4.f});
  }
}

TEST_CASE("caffemodel: a layer sharing another's parameters (Caffe's siamese nets) takes the first layer's") {
  TempDir tmp("caffemodel_shared");
  proto::NetParameter p;
  parse_text("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 4 } } }\n"
             "layer { name: 'ip_a' type: 'InnerProduct' bottom: 'x' top: 'a' param { name: 'w' } param { name: 'b' }"
             " inner_product_param { num_output: 2 } }\n"
             "layer { name: 'ip_b' type: 'InnerProduct' bottom: 'x' top: 'b' param { name: 'w' } param { name: 'b' }"
             " inner_product_param { num_output: 2 } }\n",
             "<net>", p);
  Net net(p, proto::TEST);
  caffe::NetParameter file;
  for (const char* name : {"ip_a", "ip_b"}) {
    auto* l = file.add_layer();
    l->set_name(name);
    add_blob(l->mutable_blobs(), {2, 4}, ramp(8, name[3] == 'a' ? 0 : 50));
    add_blob(l->mutable_blobs(), {2}, ramp(2, name[3] == 'a' ? 10 : 60));
  }
  write(file, tmp / "siamese.caffemodel");
  CopyReport r = load_weights(net, tmp / "siamese.caffemodel", /*strict=*/true);
  CHECK(r.loaded == std::vector<std::string>{"ip_a.weight", "ip_a.bias"});
  CHECK(r.unused.empty());
  CHECK(r.source.find("skipped, as the net shares them with an earlier layer's: ip_b.weight ip_b.bias") !=
        std::string::npos);
  CHECK(values(net, "ip_a.weight") == ramp(8, 0));
}

TEST_CASE("caffemodel: where a layer name repeats, the blobs go to the first layer of that name, as in Caffe") {
  TempDir tmp("caffemodel_repeat");
  proto::NetParameter p;
  parse_text("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 4 } } }\n"
             "layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'a' inner_product_param { num_output: 2 } }\n"
             "layer { name: 'ip' type: 'InnerProduct' bottom: 'a' top: 'b' inner_product_param { num_output: 2 } }\n",
             "<net>", p);
  Net net(p, proto::TEST);
  caffe::NetParameter file;
  auto* l = file.add_layer();
  l->set_name("ip");
  add_blob(l->mutable_blobs(), {2, 4}, ramp(8, 0));
  add_blob(l->mutable_blobs(), {2}, ramp(2, 10));
  write(file, tmp / "repeat.caffemodel");
  CopyReport r = load_weights(net, tmp / "repeat.caffemodel");
  CHECK(r.loaded == std::vector<std::string>{"ip.weight", "ip.bias"});
  CHECK(r.missing.size() == 2);  // the second 'ip' keeps its initial weights
  CHECK(values(net, "ip.weight") == ramp(8, 0));
}

TEST_CASE("caffemodel: a 0-d blob (Caffe's Scale over no axes) fills mmfuse's [1]") {
  TempDir tmp("caffemodel_scalar");
  proto::NetParameter p;
  parse_text("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }\n"
             "layer { name: 's' type: 'Scale' bottom: 'x' top: 'y' scale_param { axis: 0 num_axes: 0 } }\n",
             "<net>", p);
  Net net(p, proto::TEST);
  caffe::NetParameter file;
  auto* l = file.add_layer();
  l->set_name("s");
  auto* b = l->add_blobs();
  b->mutable_shape();  // present, no dims
  b->add_data(4.5f);
  write(file, tmp / "scalar.caffemodel");
  CopyReport r = load_weights(net, tmp / "scalar.caffemodel", /*strict=*/true);
  CHECK(r.loaded == std::vector<std::string>{"s.gamma"});
  CHECK(values(net, "s.gamma") == std::vector<float>{4.5f});
}

TEST_CASE("caffemodel: the report names missing layers and wrong shapes; errors name the file and blob") {
  TempDir tmp("caffemodel_report");
  caffe::NetParameter file = caffe_net(false);
  file.mutable_layer(0)->mutable_blobs(0)->mutable_shape()->set_dim(0, 4);  // conv1 weight [4, 3, 3, 3]
  file.mutable_layer(0)->mutable_blobs(0)->clear_data();
  for (float v : ramp(108, 0)) file.mutable_layer(0)->mutable_blobs(0)->add_data(v);
  file.mutable_layer()->DeleteSubrange(2, 1);  // no scale1
  write(file, tmp / "partial.caffemodel");
  Net net = make_net();
  CopyReport r = load_weights(net, tmp / "partial.caffemodel");
  CHECK(r.mismatched == std::vector<std::string>{"conv1.weight: net [2, 3, 3, 3] vs file [4, 3, 3, 3]"});
  CHECK(r.missing == std::vector<std::string>{"scale1.gamma", "scale1.beta"});
  const std::string table = r.table();
  CHECK(table.find("shape mismatch") != std::string::npos);
  CHECK(table.find("missing") != std::string::npos);
  std::string strict;
  try {
    Net again = make_net();
    load_weights(again, tmp / "partial.caffemodel", /*strict=*/true);
  } catch (const IOError& e) {
    strict = e.what();
  }
  CHECK(strict.find("partial.caffemodel") != std::string::npos);
  CHECK(strict.find("scale1.gamma") != std::string::npos);

  file = caffe_net(false);
  file.mutable_layer(3)->mutable_blobs(1)->add_data(1);  // ip1 bias: 4 values for 1 x 1 x 1 x 3
  write(file, tmp / "bad.caffemodel");
  std::string bad;
  try {
    Net again = make_net();
    load_weights(again, tmp / "bad.caffemodel");
  } catch (const IOError& e) {
    bad = e.what();
  }
  CHECK(bad.find("bad.caffemodel: layer 'ip1' blob 1: 4 values for shape [1, 1, 1, 3]") != std::string::npos);

  caffe::BlobProto huge;  // legacy dims whose product overflows int64
  huge.set_num(1 << 30);
  huge.set_channels(1 << 30);
  huge.set_height(1 << 30);
  huge.set_width(1 << 30);
  huge.add_data(1);
  CHECK_THROWS_WITH_AS(caffe_blob_to_tensor(huge, "blob"), doctest::Contains("is too large"), IOError);

  std::ofstream(tmp / "text.caffemodel") << "name: 'not binary'\n";
  std::string text;
  try {
    Net again = make_net();
    load_weights(again, tmp / "text.caffemodel");
  } catch (const IOError& e) {
    text = e.what();
  }
  CHECK(text.find("not a .caffemodel") != std::string::npos);
}

TEST_CASE("caffemodel: mmfuse forward and mmfuse test take a .caffemodel by --weights") {
  const auto binary = mmfuse::testing::mmfuse_binary();
  if (!std::filesystem::exists(binary)) {
    MESSAGE("skipped: no mmfuse binary next to the tests");
    return;
  }
  TempDir tmp("caffemodel_tools");
  std::ofstream(tmp / "net.prototxt") << kInput << kBody;
  write(caffe_net(true), tmp / "w.caffemodel");
  Tensor x = Tensor::from_vector(ramp(96, -40), {2, 3, 4, 4});
  save_npy(tmp / "x.npy", x);
  auto run = [&](const std::string& args, std::string& out) { return mmfuse::testing::run_mmfuse(tmp.path, args, out); };
  std::string out;
  REQUIRE_MESSAGE(run("forward --model net.prototxt --weights w.caffemodel --input data=x.npy --dump dump", out) == 0,
                  out);
  Net net = make_net();
  load_weights(net, tmp / "w.caffemodel");
  auto expected = net.forward({{"data", x}}).at("ip1").to_vector<float>();
  auto got = load_npy(tmp / "dump/ip1.npy").to_vector<float>();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-6));

  // `mmfuse test` prints what the file was and what matched.
  std::ofstream(tmp / "test.prototxt")
      << "layer { name: 'in' type: 'DummyData' top: 'data' dummy_data_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 }"
         " data_filler { type: 'gaussian' } } }\n"
      << kBody;
  REQUIRE_MESSAGE(run("test --model test.prototxt --weights w.caffemodel --iterations 1", out) == 0, out);
  CHECK(out.find("V1 `layers` format") != std::string::npos);
  CHECK(out.find("fc_old.blob0") != std::string::npos);
}
