// CPU↔CUDA parity of the fusion family: its op-case table (tests/op_cases/fusion.cpp:
// modality-stacked tensors of odd sizes, 2 and 3 modalities, receiver subsets, the scalar and
// the 16-byte vector paths); on CUDA alone: channel_gate's de is bitwise reproducible, and
// modality_tile (a helper, not a differentiable op of core/op_list.h) runs on the device.
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

Tensor uniform(const Shape& s, Generator& gen) { return Tensor::rand(s, gen, -1, 1, DType::f32); }

}  // namespace

TEST_CASE("parity: the fusion table") { testing::check_parity_cases(testing::fusion_cases()); }

MMF_CUDA_TEST("channel_gate's de on CUDA is bitwise reproducible") {
  Generator gen(84);
  Device gpu = Device::cuda(0);
  Tensor x = uniform({2, 3, 200, 301}, gen).to(gpu), e = uniform({2, 3}, gen).to(gpu);
  Tensor dy = uniform({2, 3, 200, 301}, gen).to(gpu);
  auto de = [&] {
    Tensor ec = e.detach();
    ec.set_requires_grad();
    channel_gate(x, ec).backward(dy);
    return ec.grad().to_vector<float>();
  };
  CHECK(de() == de());
}

MMF_CUDA_TEST("modality_tile runs on CUDA") {
  Generator gen(86);
  CHECK_PARITY([](const TensorList& t) { return modality_tile(t[0], 3); }, {uniform({3, 5, 7}, gen)}, 0);
}
