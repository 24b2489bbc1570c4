// Tensor basics: creation, views, copies, dtype conversion, random streams.
#include "tests/gradcheck.h"

using namespace mmfuse;

TEST_CASE("creation") {
  Tensor z = Tensor::zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.numel() == 6);
  CHECK(z.dtype() == DType::f32);
  CHECK(z.device().is_cpu());
  CHECK(z.to_vector<float>() == std::vector<float>(6, 0.f));
  CHECK(Tensor::ones({4}, DType::i32).to_vector<int32_t>() == std::vector<int32_t>{1, 1, 1, 1});
  CHECK(Tensor::full({2}, 2.5, DType::f64).to_vector<double>() == std::vector<double>{2.5, 2.5});
  CHECK(Tensor::arange(1, 2, 0.25, DType::f64).to_vector<double>() == std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(Tensor::scalar(3).dim() == 0);
  CHECK(Tensor::scalar(3).item() == 3);
  CHECK(Tensor::zeros({0, 5}).numel() == 0);
  CHECK_THROWS_AS(Tensor::zeros({-1}), OpError);
  CHECK(Tensor::zeros({2, 3}).str() == "[2, 3] float32 cpu");
}

TEST_CASE("random tensors are reproducible from the seed and have the right moments") {
  Generator g1(42), g2(42), g3(43);
  Tensor a = Tensor::rand({1000}, g1), b = Tensor::rand({1000}, g2), c = Tensor::rand({1000}, g3);
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  CHECK(a.to_vector<float>() != c.to_vector<float>());
  // Consecutive draws differ.
  CHECK(Tensor::rand({10}, g1).to_vector<float>() != Tensor::rand({10}, g1).to_vector<float>());
  Tensor n = Tensor::randn({20000}, g1, 1.0, 2.0, DType::f64);
  double m = mean(n).item();
  double var = mean(pow(n - m, 2)).item();
  CHECK(m == doctest::Approx(1.0).epsilon(0.05));
  CHECK(var == doctest::Approx(4.0).epsilon(0.05));
  auto u = Tensor::rand({20000}, g1, -2, 3, DType::f64).to_vector<double>();
  CHECK(*std::min_element(u.begin(), u.end()) >= -2);
  CHECK(*std::max_element(u.begin(), u.end()) < 3);
}

TEST_CASE("reshape and narrow are views over the same storage") {
  Tensor x = Tensor::arange(0, 24, 1).reshape({4, 3, 2});
  Tensor r = x.reshape({6, -1});
  CHECK(r.shape() == Shape{6, 4});
  CHECK(r.storage() == x.storage());
  Tensor n = x.narrow(1, 2);
  CHECK(n.shape() == Shape{2, 3, 2});
  CHECK(n.storage() == x.storage());
  CHECK(n.to_vector<float>()[0] == 6);
  // Writing through the view is visible in the base (modality slices of a stacked batch).
  n.fill_(-1);
  CHECK(x.to_vector<float>()[6] == -1);
  CHECK(x.to_vector<float>()[17] == -1);
  CHECK(x.to_vector<float>()[18] == 18);
  CHECK(x.flatten(1).shape() == Shape{4, 6});
  CHECK_THROWS_WITH_AS(x.reshape({5, -1}), "reshape: cannot reshape [4, 3, 2] into [5, -1]", OpError);
  CHECK_THROWS_AS(x.narrow(3, 2), OpError);
  CHECK_THROWS_AS(x.reshape({-1, -1}), OpError);
}

TEST_CASE("copies between dtypes") {
  Tensor x = Tensor::from_vector<double>({1.5, -2.25, 3}, {3});
  CHECK(x.to(DType::f32).to_vector<float>() == std::vector<float>{1.5f, -2.25f, 3.f});
  CHECK(x.to(DType::i32).to_vector<int32_t>() == std::vector<int32_t>{1, -2, 3});
  CHECK(x.to(DType::u8).dtype() == DType::u8);
  // Out of range: truncated into int64, then wrapped (numpy's and PyTorch's answer), no UB.
  CHECK(x.to(DType::u8).to_vector<uint8_t>() == std::vector<uint8_t>{1, 254, 3});
  Tensor c = x.clone();
  CHECK(c.storage() != x.storage());
  c.fill_(0);
  CHECK(x.to_vector<double>()[0] == 1.5);
  CHECK_THROWS_AS(x.data<float>(), OpError);
  CHECK(Device::parse("cuda:1") == Device::cuda(1));
  CHECK_THROWS_AS(Device::parse("tpu"), Error);
}

#ifndef MMFUSE_WITH_CUDA
TEST_CASE("a CPU-only build says so when asked for a CUDA tensor") {
  CHECK_THROWS_AS(Tensor::zeros({2}, DType::f32, Device::cuda(0)), DeviceError);
}
#endif
