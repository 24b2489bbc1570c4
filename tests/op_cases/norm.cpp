// batch_norm over modality-stacked batches (M = 1 to 3; ranks 2 to 4, odd sizes; training
// with and without running stats, eval; with and without affine) and dropout (the mask drawn
// from a fixed generator state, also mid-counter). Parity tolerances (docs/cuda.md): batch
// norm statistics are accumulated in double on both sides, in different orders, and the affine
// may be contracted into an FMA: 1e-6 forward, 1e-5 backward (the closed form subtracts nearly
// equal terms); dropout draws the same Philox mask on both devices and agrees to the bit.
#include "tests/op_cases/op_case.h"

namespace mmfuse::testing {

namespace {

constexpr double kNormFwd = 1e-6;
constexpr double kNormBwd = 1e-5;

// Inputs: x, then weight and bias when affine, then running mean and variance when `running`.
OpFn batch_norm_fn(const BatchNormOptions& o, bool affine, bool running) {
  return [o, affine, running](const TensorList& t) {
    size_t at = affine ? 3 : 1;
    return batch_norm(t[0], affine ? t[1] : Tensor(), affine ? t[2] : Tensor(), running ? t[at] : Tensor(),
                      running ? t[at + 1] : Tensor(), o);
  };
}

}  // namespace

OpTable norm_cases() {
  OpTable t{"norm", {}};
  struct Case {
    Shape x;
    int64_t modalities;
    unsigned runs;
  };
  // The gradient cases: ranks 2, 3 and 4 of odd sizes, M = 1 and 2 (leading dim M*3).
  std::vector<Case> cases;
  for (int64_t m : {1, 2})
    for (Shape tail : {Shape{3}, Shape{3, 5}, Shape{3, 1, 5}}) {
      Shape x{m * 3};
      x.insert(x.end(), tail.begin(), tail.end());
      cases.push_back({x, m, kGrad});
    }
  for (const Shape& x : std::vector<Shape>{{6, 3}, {4, 5, 7}, {6, 3, 5, 7}, {4, 33, 9, 11}, {2, 3, 1, 1}})
    cases.push_back({x, x == Shape{6, 3} ? 2 : x == Shape{6, 3, 5, 7} ? 3 : x == Shape{4, 33, 9, 11} ? 2 : 1, kParity});
  for (const Case& c : cases) {
    const int64_t groups = c.modalities * c.x[1];
    // Parameters and statistics as [M, C] (gradient cases, M > 1) or [M*C].
    Shape params = c.runs == kGrad && c.modalities > 1 ? Shape{c.modalities, c.x[1]} : Shape{groups};
    std::string base = shape_str(c.x) + " modalities " + std::to_string(c.modalities) +
                       (params.size() == 2 ? ", parameters [M, C]" : "");
    for (bool training : {true, false})
      for (bool affine : {true, false}) {
        BatchNormOptions o{.training = training, .momentum = 0.1, .eps = 1e-3, .modalities = c.modalities};
        std::vector<Arg> args = {in(c.x, -2, 2)};
        if (affine) args.push_back(in(params, 0.5, 1.5)), args.push_back(in({groups}));
        args.push_back(fixed({groups}, -0.5, 0.5));
        args.push_back(fixed(params, 0.5, 2));
        t.add("batch_norm", base + (training ? " training" : " eval") + (affine ? " affine" : ""), args,
              batch_norm_fn(o, affine, true))
            .parity(kNormFwd, kNormBwd)
            .runs = c.runs;
      }
    BatchNormOptions batch_stats{.modalities = c.modalities};
    if (c.runs == kParity || c.x == Shape{6, 3, 1, 5})
      t.add("batch_norm", base + " without running stats", {in(c.x, -1, 3)}, batch_norm_fn(batch_stats, false, false))
          .parity(kNormFwd, kNormBwd)
          .runs = c.runs;
  }
  // Batch statistics without running stats, a weight and no bias.
  t.add("batch_norm", "[4, 3, 3, 1] modalities 2, weight without bias", {in({4, 3, 3, 1}), in({6})},
        [](const TensorList& x) { return batch_norm(x[0], x[1], Tensor(), Tensor(), Tensor(), {.modalities = 2}); })
      .parity(kNormFwd, kNormBwd);
  // Bench row: a training batch norm of a ResNet stage.
  t.add("batch_norm", "[8, 16, 7, 9] training affine, bench size [16, 64, 56, 56]",
        {in({8, 16, 7, 9}), in({16}, 0.5, 1.5), in({16}), fixed({16}, -0.5, 0.5), fixed({16}, 0.5, 2)},
        batch_norm_fn(BatchNormOptions{}, true, true))
      .parity(kNormFwd, kNormBwd)
      .parity_only()
      .bench({{16, 64, 56, 56}, {64}, {64}, {64}, {64}});

  // dropout: each call restarts the generator at the same state, so that every evaluation (and
  // both devices) draws the same mask; offsets not a multiple of 4 start mid-counter.
  for (const Shape& s : std::vector<Shape>{{7}, {3, 5}, {3, 5, 7}, {3, 37, 129}, {1000003}})
    for (uint64_t skip : {0, 1, 3}) {
      OpCase& c = t.add("dropout", "p 0.4 " + shape_str(s) + " after " + std::to_string(skip) + " words",
                        {in(s, 0.5, 1.5)}, [skip](const TensorList& x) {
                          Generator fixed_state(64);
                          fixed_state.set_state(64, skip);
                          return dropout(x[0], 0.4, true, fixed_state);
                        });
      if (shape_numel(s) > 256 || skip != 0) c.parity_only();
      if (s == Shape{1000003} && skip == 0) c.bench({{1 << 22}});
    }
  return t;
}

}  // namespace mmfuse::testing
