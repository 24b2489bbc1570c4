// The engine: accumulation where a tensor is used twice, release of saved tensors, detach,
// no-grad, explicit gradients and errors.
#include <cmath>
#include <thread>

#include "tests/gradcheck.h"

using namespace mmfuse;

TEST_CASE("gradients accumulate where a tensor is used twice") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3}, {3}).set_requires_grad();
  Tensor y = x * x + x * 3.0;  // dy/dx = 2x + 3
  sum(y).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{5, 7, 9});
  // A second backward accumulates into .grad.
  sum(x * 2.0).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{7, 9, 11});
}

TEST_CASE("backward with an explicit gradient; non-scalar roots need one") {
  Tensor x = Tensor::from_vector<double>({1, 2}, {2}).set_requires_grad();
  Tensor y = x * 4.0;
  CHECK_THROWS_AS(y.backward(), Error);
  Tensor y2 = x * 4.0;
  y2.backward(Tensor::from_vector<double>({1, 10}, {2}));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{4, 40});
}

TEST_CASE("saved tensors are released as soon as their node has run") {
  Tensor x = Tensor::from_vector<double>({0.5, 1.5}, {2}).set_requires_grad();
  std::weak_ptr<Storage> saved;
  Tensor loss;
  {
    Tensor e = exp(x);  // exp saves its output
    saved = e.storage();
    loss = sum(e * 2.0);
  }
  CHECK_FALSE(saved.expired());  // held by the graph
  loss.backward();
  CHECK(saved.expired());
  CHECK(x.grad().to_vector<double>()[0] == doctest::Approx(2 * std::exp(0.5)));
  // The graph cannot be walked twice without retain_graph.
  CHECK_THROWS_AS(loss.backward(), Error);
}

TEST_CASE("retain_graph keeps the graph for a second backward") {
  Tensor x = Tensor::from_vector<double>({2}, {1}).set_requires_grad();
  Tensor y = sum(x * x);
  y.backward(Tensor(), true);
  y.backward();
  CHECK(x.grad().item() == 8);
}

TEST_CASE("detach and no-grad stop the graph") {
  Tensor x = Tensor::from_vector<double>({1, 2}, {2}).set_requires_grad();
  Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.storage() == x.storage());
  {
    autograd::NoGradGuard guard;
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(autograd::grad_enabled());
  Tensor y = x * 2.0;
  CHECK(y.requires_grad());
  CHECK(y.grad_fn()->name == "affine");
  CHECK_THROWS_AS(Tensor::ones({2}).backward(), Error);
  CHECK_THROWS_AS(Tensor::ones({2}, DType::i32).set_requires_grad(), OpError);
  CHECK_THROWS_AS(y.set_requires_grad(false), OpError);
}

TEST_CASE("a diamond graph sums both paths once") {
  Tensor x = Tensor::from_vector<double>({3}, {1}).set_requires_grad();
  Tensor a = x * 2.0, b = x * 5.0;
  Tensor c = a * b;  // 10 x^2 -> 20 x
  c.backward(Tensor::ones({1}, DType::f64));
  CHECK(x.grad().item() == 60);
}

TEST_CASE("nodes carry the scope of the layer that recorded them") {
  Tensor x = Tensor::from_vector<double>({1}, {1}).set_requires_grad();
  Tensor y;
  {
    autograd::ScopeGuard scope("conv1");
    y = x * 2.0;
    CHECK(autograd::current_scope() == "conv1");
  }
  CHECK(autograd::current_scope().empty());
  CHECK(y.grad_fn()->scope == "conv1");
  std::vector<std::string> seen;
  autograd::set_backward_hook([&](const autograd::Node& n, bool before) {
    if (before) seen.push_back(n.scope + "/" + n.name);
  });
  sum(y).backward();
  autograd::set_backward_hook(nullptr);
  CHECK(seen == std::vector<std::string>{"/sum", "conv1/affine"});
}

TEST_CASE("the leaf hook reports each leaf once, when its gradient is final, in the engine's order") {
  // w1 is used twice (first and last op: a parameter shared by two layers), w2 once, w3 not.
  Tensor x = Tensor::from_vector<double>({1, 2}, {2});
  Tensor w1 = Tensor::from_vector<double>({1, 2}, {2}).set_requires_grad();
  Tensor w2 = Tensor::from_vector<double>({3, 3}, {2}).set_requires_grad();
  Tensor w3 = Tensor::from_vector<double>({5, 5}, {2}).set_requires_grad();
  Tensor y = sum(x * w1 * w2 * w1);  // dy/dw1 = 2 x w1 w2 = {6, 24}, dy/dw2 = x w1^2 = {1, 8}
  std::vector<std::string> events;
  std::vector<std::vector<double>> at_report;
  auto name_of = [&](const TensorImpl& leaf) {
    return &leaf == w1.unsafe_impl() ? "w1" : &leaf == w2.unsafe_impl() ? "w2" : &leaf == w3.unsafe_impl() ? "w3" : "?";
  };
  autograd::set_backward_hook([&](const autograd::Node& n, bool before) {
    if (before) events.push_back(n.name);
  });
  autograd::LeafGradHook previous = autograd::set_leaf_grad_hook([&](const TensorImpl& leaf) {
    events.push_back(std::string("final ") + name_of(leaf));
    at_report.push_back(Tensor(leaf.grad).to_vector<double>());
  });
  y.backward();
  autograd::set_backward_hook(nullptr);
  autograd::set_leaf_grad_hook(std::move(previous));
  // w2 is final while backward still has the first product to run; w1 only after it, with
  // both of its uses summed; w3, not in the graph, is not reported.
  CHECK(events == std::vector<std::string>{"sum", "mul", "mul", "final w2", "mul", "final w1"});
  REQUIRE(at_report.size() == 2);
  CHECK(at_report[0] == std::vector<double>{1, 8});
  CHECK(at_report[1] == std::vector<double>{6, 24});
  CHECK(at_report[1] == w1.grad().to_vector<double>());
  // A later backward accumulates: the report carries the accumulated gradient.
  at_report.clear();
  previous = autograd::set_leaf_grad_hook([&](const TensorImpl& leaf) { at_report.push_back(Tensor(leaf.grad).to_vector<double>()); });
  sum(w2 * 2.0).backward();
  autograd::set_leaf_grad_hook(std::move(previous));
  CHECK(at_report == std::vector<std::vector<double>>{{3, 10}});
}

TEST_CASE("the leaf hook belongs to the thread that set it") {
  int reports = 0;
  autograd::LeafGradHook previous = autograd::set_leaf_grad_hook([&](const TensorImpl&) { ++reports; });
  std::thread other([] {
    Tensor w = Tensor::from_vector<double>({1}, {1}).set_requires_grad();
    sum(w * 2.0).backward();
  });
  other.join();
  CHECK(reports == 0);
  Tensor w = Tensor::from_vector<double>({1}, {1}).set_requires_grad();
  sum(w * 2.0).backward();
  CHECK(reports == 1);
  autograd::set_leaf_grad_hook(std::move(previous));
}

namespace {
// An op with one input whose backward returns what `grad` makes (the output is a plain copy).
Tensor with_backward(const Tensor& x, std::function<Tensor()> grad) {
  Tensor y = x.detach().clone();
  autograd::record("with_backward", {x}, {y}, [grad](const TensorList&) -> TensorList { return {grad()}; });
  return y;
}
}  // namespace

// Where two gradients meet, the engine adds the second into the first when it holds the only
// reference (core/ops/elementwise.h, accumulate_gradient): no allocation, the same sum. A
// gradient that someone else holds, or whose memory is viewed, is never written.
TEST_CASE("gradient sums go in place only into a gradient nobody else holds") {
  SUBCASE("accumulate_gradient") {
    Tensor incoming = Tensor::from_vector<float>({1, 2, 3}, {3});
    autograd::NoGradGuard no_grad;  // as in backward
    Tensor mine = Tensor::from_vector<float>({10, 20, 30}, {3});
    const void* memory = mine.raw_data();
    Tensor sum_mine = accumulate_gradient(std::move(mine), incoming);
    CHECK(sum_mine.raw_data() == memory);
    CHECK(sum_mine.to_vector<float>() == std::vector<float>{11, 22, 33});
    Tensor shared = Tensor::from_vector<float>({10, 20, 30}, {3});
    Tensor sum_shared = accumulate_gradient(shared, incoming);  // the caller keeps `shared`
    CHECK(sum_shared.raw_data() != shared.raw_data());
    CHECK(shared.to_vector<float>() == std::vector<float>{10, 20, 30});
    CHECK(sum_shared.to_vector<float>() == std::vector<float>{11, 22, 33});
    Tensor base = Tensor::from_vector<float>({10, 20, 30, 40}, {4});
    Tensor view = base.narrow(0, 3);
    Tensor sum_view = accumulate_gradient(std::move(view), incoming);  // `base` sees that memory
    CHECK(base.to_vector<float>() == std::vector<float>{10, 20, 30, 40});
    CHECK(sum_view.to_vector<float>() == std::vector<float>{11, 22, 33});
  }
  SUBCASE("the engine") {
    for (bool kept_first : {true, false}) {
      CAPTURE(kept_first);
      Tensor x = Tensor::from_vector<float>({1, 2}, {2}).set_requires_grad();
      Tensor kept = Tensor::from_vector<float>({5, 6}, {2});  // a gradient the test keeps
      const void* fresh_memory = nullptr;
      auto fresh = [&] {
        Tensor g = Tensor::from_vector<float>({100, 200}, {2});
        fresh_memory = g.raw_data();
        return g;
      };
      // Later nodes run first: the one created second delivers its gradient first.
      Tensor a, b;
      if (kept_first) {
        b = with_backward(x, fresh);
        a = with_backward(x, [&] { return kept; });
      } else {
        a = with_backward(x, [&] { return kept; });
        b = with_backward(x, fresh);
      }
      sum(a + b).backward();
      CHECK(kept.to_vector<float>() == std::vector<float>{5, 6});
      CHECK(x.grad().to_vector<float>() == std::vector<float>{105, 206});
      // The fresh gradient, arriving first, was the sum's buffer: the kept one was added into it.
      if (!kept_first) CHECK(x.grad().raw_data() == fresh_memory);
    }
  }
}
