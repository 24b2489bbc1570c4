// Prototxt reading: error positions (1-based line:col), suggestions, layer lines, binary I/O.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/prototxt.h"
#include "doctest/doctest.h"

using namespace mmfuse;

namespace {
std::string parse_error(const std::string& text) {
  try {
    read_net_text(text, "net.prototxt");
  } catch (const ParseError& e) {
    return e.what();
  }
  return "(no error)";
}
std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("mmfuse_test_prototxt_" + name)).string();
}
}  // namespace

TEST_CASE("a syntax error names file, 1-based line and column") {
  CHECK(parse_error("name: \"x\"\nlayer {\n  name: \"a\"\n  type \"ReLU\"\n}\n") ==
        "net.prototxt:4:8: Expected \":\", found \"\"ReLU\"\".");
  CHECK(parse_error("layer {\n  name: \"p\"\n  top: \"x\"\n") ==
        "net.prototxt:4:1: unexpected end of file (a closing '}' missing?)");
}

TEST_CASE("an unknown field points at the name and suggests the nearest field of that message") {
  CHECK(parse_error("layer {\n  name: \"c\"\n  convolution_param { kernal_size: 3 }\n}\n") ==
        "net.prototxt:3:23: unknown field 'kernal_size' in ConvolutionParameter; did you mean 'kernel_size'?");
  CHECK(parse_error("layer {\n  nmae: \"c\"\n}\n") ==
        "net.prototxt:2:3: unknown field 'nmae' in LayerParameter; did you mean 'name'?");
  // Nothing close: no suggestion.
  CHECK(parse_error("zzzzzzzz: 1\n") == "net.prototxt:1:1: unknown field 'zzzzzzzz' in NetParameter");
}

TEST_CASE("an unknown enum value suggests the nearest value") {
  CHECK(parse_error("layer {\n  name: \"p\"\n  pooling_param {\n    pool: AVG\n  }\n}\n") ==
        "net.prototxt:4:11: unknown value 'AVG' for field 'pool'; did you mean 'AVE'?");
}

TEST_CASE("suggest picks the nearest candidate and only plausible typos") {
  std::vector<std::string> types{"Convolution", "Deconvolution", "ReLU", "Pooling", "InnerProduct"};
  CHECK(suggest("Convolutoin", types) == "Convolution");
  CHECK(suggest("relu", types) == "ReLU");
  CHECK(suggest("Poling", types) == "Pooling");
  CHECK(suggest("Softmax", types) == "");
  CHECK(did_you_mean("Inner_Product", types) == "; did you mean 'InnerProduct'?");
  CHECK(edit_distance("abc", "acb") == 1);
  CHECK(edit_distance("", "abc") == 3);
}

TEST_CASE("read_net records each layer's line and the file") {
  std::string path = temp_path("lines.prototxt");
  {
    std::ofstream out(path);
    out << "name: \"n\"\n\nlayer { name: \"a\" type: \"ReLU\" }\n# comment\nlayer {\n  name: \"b\"\n}\n";
  }
  proto::NetParameter net = read_net(path);
  REQUIRE(net.layer_size() == 2);
  CHECK(net.layer(0).source_line() == 3);
  CHECK(net.layer(1).source_line() == 5);
  CHECK(net.source_file() == path);
  CHECK(layer_location(net, net.layer(1)) == path + ":5");
  std::remove(path.c_str());
  CHECK_THROWS_WITH_AS(read_net(path), (path + ": cannot open for reading (No such file or directory)").c_str(),
                       IOError);
}

TEST_CASE("solver text parses with Caffe's names and mmfuse's additions") {
  proto::SolverParameter s = read_solver_text(
      "net: \"train_val.prototxt\"\nbase_lr: 0.01\nlr_policy: \"cosine\"\nwarmup_iter: 100\n"
      "momentum: 0.9\nweight_decay: 0.0005\nmax_iter: 1000\ntype: \"AdamW\"\nstepvalue: 10 stepvalue: 20\n",
      "solver.prototxt");
  CHECK(s.net() == "train_val.prototxt");
  CHECK(s.base_lr() == doctest::Approx(0.01));
  CHECK(s.warmup_iter() == 100);
  CHECK(s.stepvalue_size() == 2);
  CHECK_THROWS_WITH_AS(read_solver_text("base_lr: 0.1\nmomentun: 0.9\n", "solver.prototxt"),
                       "solver.prototxt:2:1: unknown field 'momentun' in SolverParameter; did you mean 'momentum'?",
                       ParseError);
}

TEST_CASE("binary messages round-trip through an atomic write") {
  std::string path = temp_path("weights.bin");
  proto::NetWeights w;
  w.set_name("n");
  auto* b = w.add_param();
  b->set_name("conv1.weight");
  b->mutable_shape()->add_dim(2);
  b->add_data(1.5f);
  b->add_data(-2.f);
  write_binary_atomic(path, w);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  proto::NetWeights r;
  read_binary(path, r);
  CHECK(r.param(0).name() == "conv1.weight");
  CHECK(r.param(0).data(1) == -2.f);
  {
    std::ofstream out(path, std::ios::binary);
    out << "\xff\xff\xff garbage";
  }
  CHECK_THROWS_AS(read_binary(path, r), IOError);
  std::remove(path.c_str());
  CHECK_THROWS_AS(write_binary_atomic("/nonexistent-dir/x.bin", w), IOError);
}
