// CPU↔CUDA parity of the fusion family on modality-stacked tensors of odd sizes (the brief's
// [2*3, 37, 9, 11], 2 and 3 modalities, receiver subsets), both the scalar and the 16-byte
// vector paths. Tolerances (docs/cuda.md): channel_shuffle and pixel_shift_add move or add
// the same floats as the CPU, forward and backward: 0. channel_gate evaluates the sigmoid
// with CUDA's exp (a few ulps from glibc's) and sums dy * x in double in another order: 2e-6.
// modality_ensemble accumulates in double (FMA contraction aside) and its alpha gradient goes
// through exp and a reduction: 2e-6.
#include "tests/cuda/cuda_parity.h"

using namespace mmfuse;

namespace {

constexpr double kExact = 0;
constexpr double kLibm = 2e-6;

Tensor uniform(const Shape& s, Generator& gen, double low = -1, double high = 1) {
  return Tensor::rand(s, gen, low, high, DType::f32);
}

struct Stack {
  int64_t modalities;
  std::vector<int64_t> receivers;
};
std::vector<Stack> stacks() { return {{2, {}}, {2, {1}}, {3, {}}, {3, {0, 2}}, {1, {}}}; }

}  // namespace

MMF_CUDA_TEST("parity: channel_shuffle (forward and its adjoint)") {
  Generator gen(81);
  // inner 99 (scalar path), 20 (vector path), 1 (a [M*N, C] tensor).
  for (const Shape& s : std::vector<Shape>{{6, 37, 9, 11}, {6, 37, 4, 5}, {6, 37}, {6, 4, 3}}) {
    for (const Stack& st : stacks()) {
      for (double keep : {0.8, 0.5, 1.0, 0.0}) {
        INFO("channel_shuffle " << shape_str(s) << " modalities " << st.modalities << " receivers "
                                << shape_str(st.receivers) << " keep " << keep);
        CHECK_PARITY([st, keep](const TensorList& t) { return channel_shuffle(t[0], st.modalities, keep, st.receivers); },
                     {uniform(s, gen)}, kExact);
      }
    }
  }
}

MMF_CUDA_TEST("parity: pixel_shift_add (fused forward, shifted adjoint)") {
  Generator gen(82);
  struct Geo { int64_t groups, shift; };
  // width 11 (scalar path) and 12 (vector path); groups > 4 double the distance.
  for (const Shape& s : std::vector<Shape>{{6, 37, 9, 11}, {6, 37, 9, 12}, {6, 3, 5, 5}, {6, 40, 3, 8}}) {
    for (const Stack& st : stacks()) {
      for (Geo g : {Geo{4, 1}, Geo{4, 2}, Geo{6, 1}, Geo{1, 3}, Geo{9, 5}}) {
        INFO("pixel_shift_add " << shape_str(s) << " modalities " << st.modalities << " receivers "
                                << shape_str(st.receivers) << " groups " << g.groups << " shift " << g.shift);
        CHECK_PARITY([st, g](const TensorList& t) {
          return pixel_shift_add(t[0], t[1], st.modalities, g.groups, g.shift, st.receivers);
        }, {uniform(s, gen), uniform(s, gen)}, kExact);
      }
    }
  }
}

MMF_CUDA_TEST("parity: channel_gate") {
  Generator gen(83);
  // inner 99, 20 (vector path), 1 ([N, C]), and few planes with a long inner run (the
  // per-plane reduction is cut into chunks and their partials folded in order).
  for (const Shape& s : std::vector<Shape>{{6, 37, 9, 11}, {5, 7, 4, 5}, {6, 37}, {3, 5, 7}, {1, 2, 300, 301}}) {
    for (double scale : {2.0, 1.0}) {
      INFO("channel_gate " << shape_str(s) << " scale " << scale);
      CHECK_PARITY([scale](const TensorList& t) { return channel_gate(t[0], t[1], scale); },
                   {uniform(s, gen), uniform({s[0], s[1]}, gen, -3, 3)}, kLibm);
      INFO("channel_gate " << shape_str(s) << " with a constant e (dx only)");
      Tensor e = uniform({s[0], s[1]}, gen, -3, 3);
      CHECK_PARITY([scale, e](const TensorList& t) { return channel_gate(t[0], t[0].is_cuda() ? e.to(t[0].device()) : e, scale); },
                   {uniform(s, gen)}, kLibm);
      INFO("channel_gate " << shape_str(s) << " with a constant x (de only)");
      Tensor x = uniform(s, gen);
      CHECK_PARITY([scale, x](const TensorList& t) { return channel_gate(t[0].is_cuda() ? x.to(t[0].device()) : x, t[0], scale); },
                   {uniform({s[0], s[1]}, gen, -3, 3)}, kLibm);
    }
  }
}

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

MMF_CUDA_TEST("parity: modality_ensemble (weights from a device softmax)") {
  Generator gen(85);
  for (const Shape& s : std::vector<Shape>{{6, 37}, {6, 37, 9, 11}, {4, 10}, {3, 5, 7}}) {
    for (int64_t m : {1, 2, 3}) {
      if (s[0] % m != 0) continue;
      for (bool detach : {true, false}) {
        INFO("modality_ensemble " << shape_str(s) << " modalities " << m << " detach " << detach);
        CHECK_PARITY([m, detach](const TensorList& t) { return modality_ensemble(t[0], t[1], m, detach); },
                     {uniform(s, gen, -4, 4), uniform({m}, gen, -2, 2)}, kLibm);
      }
    }
  }
  INFO("modality_ensemble with a constant alpha (logits gradient only)");
  Tensor alpha = uniform({2}, gen, -2, 2);
  CHECK_PARITY([alpha](const TensorList& t) {
    return modality_ensemble(t[0], t[0].is_cuda() ? alpha.to(t[0].device()) : alpha, 2, false);
  }, {uniform({6, 37, 9, 11}, gen)}, kLibm);
}

MMF_CUDA_TEST("modality_stack and modality_tile run on CUDA") {
  Generator gen(86);
  CHECK_PARITY([](const TensorList& t) { return modality_stack({t[0], t[1], t[2]}); },
               {uniform({3, 5, 7}, gen), uniform({3, 5, 7}, gen), uniform({3, 5, 7}, gen)}, kExact);
  CHECK_PARITY([](const TensorList& t) { return modality_tile(t[0], 3); }, {uniform({3, 5, 7}, gen)}, kExact);
}
