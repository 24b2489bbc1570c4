#include "tests/gradcheck.h"

using namespace mmfuse;

TEST_CASE("sum, mean, max over chosen dims by hand") {
  Tensor x = Tensor::arange(0, 24, 1, DType::f64).reshape({2, 3, 4});
  CHECK(sum(x).item() == 276);
  CHECK(sum(x, {0}).to_vector<double>() == std::vector<double>{12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34});
  CHECK(sum(x, {1, 2}).to_vector<double>() == std::vector<double>{66, 210});
  CHECK(sum(x, {-1}, true).shape() == Shape{2, 3, 1});
  CHECK(mean(x, {2}).to_vector<double>() == std::vector<double>{1.5, 5.5, 9.5, 13.5, 17.5, 21.5});
  CHECK(max(x, {0, 2}).to_vector<double>() == std::vector<double>{15, 19, 23});
  CHECK(sum_to(x, {3, 1}).to_vector<double>() == std::vector<double>{60, 92, 124});
  CHECK_THROWS_AS(sum(x, {3}), OpError);
  CHECK_THROWS_AS(sum(x, {1, -2}), OpError);
  CHECK_THROWS_WITH_AS(max(Tensor::empty({3, 0}), {1}), "max: empty reduction over [3, 0]", OpError);
  CHECK(max(Tensor::empty({0, 3}), {1}).shape() == Shape{0});
}

// The finite-difference gradient checks of the family: its op-case table (tests/op_cases/reduce.cpp).
TEST_CASE("gradcheck: the reduce table") { CHECK(testing::check_gradient_cases(testing::reduce_cases()) > 0); }
