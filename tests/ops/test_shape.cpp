// Shape ops: forward values by hand and against naive index loops, argument errors, and
// gradient checks at odd sizes.
#include "tests/gradcheck.h"

using namespace mmfuse;

namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

Tensor iota(const Shape& shape, DType dtype = DType::f64) {
  return Tensor::arange(0, static_cast<double>(shape_numel(shape)), 1, dtype).reshape(shape);
}

// Row-major flat index of `idx` in `shape`.
int64_t flat(const Shape& shape, const Shape& idx) {
  int64_t f = 0;
  for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
  return f;
}

// Calls f(idx) for every multi-index of shape.
template <typename F>
void for_each_index(const Shape& shape, F f) {
  int64_t n = shape_numel(shape);
  Shape idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    f(idx);
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

}  // namespace

TEST_CASE("concat by hand") {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector<float>({5, 6}, {2, 1});
  Tensor c = Tensor::from_vector<float>({7, 8}, {1, 2});
  CHECK(concat({a, b}, 1).shape() == Shape{2, 3});
  CHECK(concat({a, b}, 1).to_vector<float>() == std::vector<float>{1, 2, 5, 3, 4, 6});
  CHECK(concat({a, b}, -1).to_vector<float>() == std::vector<float>{1, 2, 5, 3, 4, 6});
  CHECK(concat({a, c}, 0).to_vector<float>() == std::vector<float>{1, 2, 3, 4, 7, 8});
  Tensor one = concat({a}, 0);
  CHECK(one.to_vector<float>() == a.to_vector<float>());
  CHECK(one.storage() != a.storage());  // a new tensor, not an alias
  // Any dtype; empty pieces are fine.
  Tensor i = Tensor::from_vector<int32_t>({1, 2, 3}, {3});
  Tensor none = Tensor::empty({0}, DType::i32);
  CHECK(concat({i, none, i}, 0).to_vector<int32_t>() == std::vector<int32_t>{1, 2, 3, 1, 2, 3});
}

TEST_CASE("concat matches a naive loop, serial and parallel sizes") {
  Generator gen(5);
  for (int64_t big : {1, 5000}) {  // 5000: enough rows for the parallel path
    for (int64_t dim : {0, 1, 2}) {
      std::vector<Shape> shapes = {{big, 3, 5}, {big, 3, 5}, {big, 3, 5}};
      shapes[1][dim] = 2;
      shapes[2][dim] = 7;
      TensorList xs;
      for (const Shape& s : shapes) xs.push_back(Tensor::rand(s, gen, -1, 1, DType::f32));
      Tensor out = concat(xs, dim);
      std::vector<float> got = out.to_vector<float>();
      bool ok = true;
      int64_t at = 0;
      for (const Tensor& x : xs) {
        std::vector<float> v = x.to_vector<float>();
        for_each_index(x.shape(), [&](const Shape& idx) {
          Shape o = idx;
          o[dim] += at;
          ok = ok && got[flat(out.shape(), o)] == v[flat(x.shape(), idx)];
        });
        at += x.size(dim);
      }
      INFO("big " << big << " dim " << dim);
      CHECK(ok);
    }
  }
}

TEST_CASE("concat errors name the op and the shapes") {
  Tensor a = Tensor::zeros({2, 2}), b = Tensor::zeros({3, 2});
  CHECK_THROWS_WITH_AS(concat({a, b}, 1),
                       "concat: input 1 has shape [3, 2] but input 0 has [2, 2] (shapes must match except in dim 1)",
                       OpError);
  CHECK_THROWS_WITH_AS(concat({a, Tensor::zeros({2})}, 0),
                       "concat: input 1 has shape [2] but input 0 has [2, 2] (shapes must match except in dim 0)",
                       OpError);
  CHECK_THROWS_WITH_AS(concat({a, a}, 2), "concat: dim 2 out of range for a 2-d tensor", OpError);
  CHECK_THROWS_WITH_AS(concat({a, Tensor::zeros({2, 2}, DType::f64)}, 0),
                       "concat: input 1 is [2, 2] float64 cpu but input 0 is [2, 2] float32 cpu", OpError);
  CHECK_THROWS_WITH_AS(concat({}, 0), "concat: needs at least one tensor", OpError);
  CHECK_THROWS_WITH_AS(concat({Tensor::scalar(1), Tensor::scalar(2)}, 0),
                       "concat: needs a tensor with at least one dim, got shape []", OpError);
}

TEST_CASE("split by hand") {
  Tensor x = iota({3, 4});
  TensorList parts = split(x, {1, 3}, 1);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].shape() == Shape{3, 1});
  CHECK(values(parts[0]) == std::vector<double>{0, 4, 8});
  CHECK(values(parts[1]) == std::vector<double>{1, 2, 3, 5, 6, 7, 9, 10, 11});
  // Along dim 0 the pieces are views of x's storage.
  TensorList rows = split(x, {2, 0, 1}, 0);
  CHECK(rows[0].storage() == x.storage());
  CHECK(values(rows[0]) == std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(rows[1].shape() == Shape{0, 4});
  CHECK(values(rows[2]) == std::vector<double>{8, 9, 10, 11});
  TensorList halves = split_equal(iota({2, 6}, DType::u8), 3, -1);
  REQUIRE(halves.size() == 3);
  CHECK(halves[2].to_vector<int>() == std::vector<int>{4, 5, 10, 11});
}

TEST_CASE("split errors") {
  Tensor x = Tensor::zeros({3, 4});
  CHECK_THROWS_WITH_AS(split(x, {1, 2}, 1), "split: sizes [1, 2] sum to 3 but dim 1 of [3, 4] has size 4", OpError);
  CHECK_THROWS_WITH_AS(split(x, {5, -1}, 1), "split: negative size in [5, -1]", OpError);
  CHECK_THROWS_WITH_AS(split(x, {}, 1), "split: needs at least one size", OpError);
  CHECK_THROWS_WITH_AS(split_equal(x, 3, 1), "split: dim 1 of [3, 4] does not split into 3 equal parts", OpError);
  CHECK_THROWS_WITH_AS(split_equal(x, 0, 1), "split: dim 1 of [3, 4] does not split into 0 equal parts", OpError);
  CHECK_THROWS_WITH_AS(split(x, {3}, -3), "split: dim -3 out of range for a 2-d tensor", OpError);
}

TEST_CASE("slice follows Python's indexing") {
  Tensor x = iota({10});
  CHECK(values(slice(x, 0, 2, 8, 3)) == std::vector<double>{2, 5});
  CHECK(values(slice(x, 0, -3, 100)) == std::vector<double>{7, 8, 9});
  CHECK(values(slice(x, 0, -100, 2)) == std::vector<double>{0, 1});
  CHECK(values(slice(x, 0, 1, -6, 2)) == std::vector<double>{1, 3});
  CHECK(slice(x, 0, 5, 2).shape() == Shape{0});
  CHECK(slice(x, 0, 12, 20).shape() == Shape{0});
  Tensor y = iota({3, 4});
  CHECK(values(slice(y, 1, 1, 4, 2)) == std::vector<double>{1, 3, 5, 7, 9, 11});
  CHECK(values(slice(y, -2, 1, 3)) == std::vector<double>{4, 5, 6, 7, 8, 9, 10, 11});
  CHECK(slice(Tensor::from_vector<int64_t>({4, 5, 6}, {3}), 0, 0, 3, 2).to_vector<int64_t>() ==
        std::vector<int64_t>{4, 6});
  CHECK_THROWS_WITH_AS(slice(y, 1, 0, 4, 0), "slice: step must be positive, got 0", OpError);
  CHECK_THROWS_WITH_AS(slice(y, 2, 0, 4), "slice: dim 2 out of range for a 2-d tensor", OpError);
}

TEST_CASE("pad by hand, negative pads crop") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4}, {2, 2});
  CHECK(values(pad(x, {1, 0}, 9)) == std::vector<double>{9, 1, 2, 9, 3, 4});
  Tensor p = pad(x, {0, 1, 1, 0});  // last dim (0, 1), then dim 0 (1, 0)
  CHECK(p.shape() == Shape{3, 3});
  CHECK(values(p) == std::vector<double>{0, 0, 0, 1, 2, 0, 3, 4, 0});
  Tensor v = Tensor::from_vector<double>({1, 2, 3}, {3});
  CHECK(values(pad(v, {-1, 1})) == std::vector<double>{2, 3, 0});
  CHECK(values(pad(v, {-5, 3}, 7)) == std::vector<double>{7});  // all of x cropped away
  CHECK(pad(v, {-2, -1}).shape() == Shape{0});
  CHECK(values(pad(v, {})) == std::vector<double>{1, 2, 3});
  CHECK(pad(Tensor::from_vector<uint8_t>({5}, {1}), {1, 1}, 2).to_vector<int>() == std::vector<int>{2, 5, 2});
  CHECK_THROWS_WITH_AS(pad(x, {1, 1, 1}), "pad: pads must hold (before, after) pairs, got 3 values", OpError);
  CHECK_THROWS_WITH_AS(pad(x, {1, 1, 1, 1, 1, 1}),
                       "pad: 3 (before, after) pairs for input of shape [2, 2] (at most one per dim)", OpError);
  CHECK_THROWS_WITH_AS(pad(x, {-2, -1}), "pad: pads (-2, -1) of dim 1 leave a negative size for input of shape [2, 2]",
                       OpError);
}

TEST_CASE("pad matches a naive loop") {
  Generator gen(6);
  Tensor x = Tensor::rand({3, 5, 7}, gen, -1, 1, DType::f64);
  std::vector<int64_t> pads = {2, -3, -1, 1, 0, 2};  // dim 2: (2, -3), dim 1: (-1, 1), dim 0: (0, 2)
  Tensor out = pad(x, pads, 0.5);
  CHECK(out.shape() == Shape{5, 5, 6});
  std::vector<double> v = values(x), got = values(out);
  bool ok = true;
  for_each_index(out.shape(), [&](const Shape& o) {
    Shape i = {o[0] - 0, o[1] + 1, o[2] - 2};
    bool inside = i[0] >= 0 && i[0] < 3 && i[1] >= 0 && i[1] < 5 && i[2] >= 0 && i[2] < 7;
    ok = ok && got[flat(out.shape(), o)] == (inside ? v[flat(x.shape(), i)] : 0.5);
  });
  CHECK(ok);
}

TEST_CASE("crop by hand") {
  Tensor x = iota({2, 3, 4});
  Tensor c = crop(x, {1, 1, 1}, {1, 2, 2});
  CHECK(c.shape() == Shape{1, 2, 2});
  CHECK(values(c) == std::vector<double>{17, 18, 21, 22});
  CHECK(values(crop(x, {0, 0, 0}, {2, 3, 4})) == values(x));
  CHECK(crop(x, {2, 0, 0}, {0, 3, 4}).shape() == Shape{0, 3, 4});
  CHECK_THROWS_WITH_AS(crop(x, {0, 0}, {1, 1}),
                       "crop: input of shape [2, 3, 4] needs 3 offsets and 3 sizes, got 2 and 2", OpError);
  CHECK_THROWS_WITH_AS(crop(x, {0, 2, 0}, {1, 2, 4}),
                       "crop: window [2, 4) of dim 1 is outside input of shape [2, 3, 4]", OpError);
  CHECK_THROWS_WITH_AS(crop(x, {0, 0, -1}, {1, 1, 1}),
                       "crop: window [-1, 0) of dim 2 is outside input of shape [2, 3, 4]", OpError);
}

TEST_CASE("split's unused outputs get zero gradients; concat skips inputs without grad") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad();
  TensorList parts = split(x, {1, 2}, 1);
  sum(parts[1]).backward();
  CHECK(values(x.grad()) == std::vector<double>{0, 1, 1, 0, 1, 1});
  Tensor a = Tensor::ones({2, 1}, DType::f64).set_requires_grad();
  Tensor b = Tensor::ones({2, 2}, DType::f64);
  sum(concat({b, a}, 1) * 3.0).backward();
  CHECK(values(a.grad()) == std::vector<double>{3, 3});
  CHECK_FALSE(b.grad().defined());
}

#ifdef MMFUSE_WITH_CUDA
#include "cuda/runtime.h"

TEST_CASE("shape ops on CUDA tensors run on the device") {
  if (cuda::device_count() == 0) {
    MESSAGE("skipped: no GPU on this machine");
    return;
  }
  // Values are compared with the CPU in tests/cuda/test_cuda_shape.cpp; here: they run and stay there.
  Tensor x = Tensor::zeros({3, 4}, DType::f32, Device::cuda(0));
  CHECK(concat({x, x}, 1).shape() == Shape{3, 8});
  CHECK(concat({x, x}, 1).is_cuda());
  CHECK(split(x, {1, 3}, 1)[1].is_cuda());
  CHECK(split(x, {1, 2}, 0)[1].shape() == Shape{2, 4});  // views need no kernel
  CHECK(slice(x, 1, 0, 2).is_cuda());
  CHECK(pad(x, {1, 1}).shape() == Shape{3, 6});
  CHECK(crop(x, {0, 0}, {1, 1}).is_cuda());
}
#endif

// The finite-difference gradient checks of the family: its op-case table (tests/op_cases/shape.cpp).
TEST_CASE("gradcheck: the shape table") { CHECK(testing::check_gradient_cases(testing::shape_cases()) > 0); }
