#include "tests/op_cases/op_case.h"

#include <cmath>

namespace mmfuse::testing {

Arg in(Shape shape, double low, double high) { return Arg{std::move(shape), low, high}; }

Arg fixed(Shape shape, double low, double high) {
  Arg a{std::move(shape), low, high};
  a.grad = false;
  return a;
}

Arg labels(Shape shape, int64_t classes, bool ignored, int64_t ignore_index) {
  Arg a{std::move(shape), 0, static_cast<double>(classes)};
  a.grad = false;
  a.classes = classes;
  a.ignored = ignored;
  a.ignore_index = ignore_index;
  return a;
}

OpCase& OpCase::bench(std::vector<Shape> shapes) {
  MMF_CHECK(shapes.size() == args.size(), Error, "op case ", name(), ": ", shapes.size(), " bench shapes for ",
            args.size(), " inputs");
  bench_shapes = std::move(shapes);
  return *this;
}

namespace {

// FNV-1a: a seed that stays with the case when rows are added or moved.
uint64_t seed_of(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ull;
  return h;
}

}  // namespace

OpCase& OpTable::add(std::string op, std::string what, std::vector<Arg> args, OpFn fn) {
  OpCase c;
  c.seed = seed_of(family + "/" + op + "/" + what);
  c.op = std::move(op);
  c.what = std::move(what);
  c.args = std::move(args);
  c.fn = std::move(fn);
  cases.push_back(std::move(c));
  return cases.back();
}

TensorList make_inputs(const OpCase& c, DType dtype, bool with_grad, bool bench, Device device) {
  Generator gen(c.seed);
  TensorList inputs;
  for (size_t i = 0; i < c.args.size(); ++i) {
    const Arg& a = c.args[i];
    const Shape& shape = bench ? c.bench_shapes.at(i) : a.shape;
    Tensor t;
    if (a.classes > 0) {
      std::vector<double> v = Tensor::rand(shape, gen, 0, static_cast<double>(a.classes), DType::f64).to_vector<double>();
      std::vector<int32_t> l(v.size());
      for (size_t k = 0; k < v.size(); ++k)
        l[k] = a.ignored && k % 5 == 2 ? static_cast<int32_t>(a.ignore_index) : static_cast<int32_t>(v[k]);
      t = Tensor::from_vector(l, shape);
    } else if (a.integers) {
      std::vector<double> v = Tensor::rand(shape, gen, a.low, a.high, DType::f64).to_vector<double>();
      for (double& e : v) e = std::floor(e);
      t = Tensor::from_vector(v, shape).to(dtype);
    } else {
      t = Tensor::rand(shape, gen, a.low, a.high, dtype);
    }
    if (!device.is_cpu()) t = t.to(device);
    if (with_grad && a.grad) t.set_requires_grad();
    inputs.push_back(t);
  }
  return inputs;
}

std::vector<bool> grad_mask(const OpCase& c) {
  std::vector<bool> mask;
  for (const Arg& a : c.args) mask.push_back(a.grad);
  return mask;
}

std::vector<OpTable> all_op_tables() {
  return {elementwise_cases(), reduce_cases(), linalg_cases(), conv_cases(),  pool_cases(),
          resize_cases(),      norm_cases(),   loss_cases(),   shape_cases(), fusion_cases()};
}

}  // namespace mmfuse::testing
