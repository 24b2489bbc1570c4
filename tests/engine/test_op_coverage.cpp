// Every op in core/op_list.h has a gradient case and a parity case in the op-case tables
// (tests/op_cases/), and every case names an op of the list.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "core/op_list.h"
#include "tests/gradcheck.h"

using namespace mmfuse;
using namespace mmfuse::testing;

namespace {

std::vector<std::string> listed_ops() {
  return {
#define MMF_OP_NAME(name, ...) #name,
      MMFUSE_OPS(MMF_OP_NAME)
#undef MMF_OP_NAME
  };
}

// The ops of `tables` with no case run `run`, in core/op_list.h's order.
std::vector<std::string> ops_without(const std::vector<OpTable>& tables, Run run) {
  std::vector<std::string> missing;
  for (const std::string& op : listed_ops()) {
    bool found = false;
    for (const OpTable& t : tables)
      for (const OpCase& c : t.cases) found = found || (c.op == op && (c.runs & run));
    if (!found) missing.push_back(op);
  }
  return missing;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

TEST_CASE("every op in core/op_list.h has a gradient case and a parity case in the op-case tables") {
  std::vector<OpTable> tables = all_op_tables();
  std::vector<std::string> no_grad = ops_without(tables, kGrad), no_parity = ops_without(tables, kParity);
  CHECK_MESSAGE(no_grad.empty(),
                "ops without a gradient case (add a row to their family's table in tests/op_cases/): " << joined(no_grad));
  CHECK_MESSAGE(no_parity.empty(),
                "ops without a parity case (a row not marked grad_only in tests/op_cases/): " << joined(no_parity));
  // And no case claims an op that is not in the list.
  std::vector<std::string> ops = listed_ops();
  for (const OpTable& t : tables)
    for (const OpCase& c : t.cases) {
      INFO(t.family << " table, case " << c.name() << ": its op is missing from core/op_list.h");
      CHECK(std::find(ops.begin(), ops.end(), c.op) != ops.end());
    }
}

TEST_CASE("the op-case tables: inputs, runs and names are well formed") {
  std::string counts;
  for (const OpTable& t : all_op_tables()) {
    std::map<std::string, int> names;
    int grad = 0, parity = 0, bench = 0;
    for (const OpCase& c : t.cases) {
      grad += (c.runs & kGrad) ? 1 : 0;
      parity += (c.runs & kParity) ? 1 : 0;
      bench += c.bench_shapes.empty() ? 0 : 1;
      INFO(t.family << " table, case " << c.name());
      CHECK(c.runs != 0);
      CHECK(static_cast<bool>(c.fn));
      CHECK(++names[c.name()] == 1);  // a name finds one case
      CHECK(c.tol >= 0);
      CHECK((c.bench_shapes.empty() || c.bench_shapes.size() == c.args.size()));
      bool differentiable = false;
      for (const Arg& a : c.args) differentiable = differentiable || a.grad;
      CHECK(differentiable);  // a case with nothing to differentiate checks no gradient
    }
    counts += "\n  " + t.family + ": " + std::to_string(grad) + " gradient, " + std::to_string(parity) + " parity, " +
              std::to_string(bench) + " bench";
  }
  MESSAGE("cases per table:" << counts);
}

TEST_CASE("the coverage check names an op whose only case is removed") {
  // The check above, on a copy of the tables without the elementwise gelu rows.
  std::vector<OpTable> tables = all_op_tables();
  for (OpTable& t : tables)
    t.cases.erase(std::remove_if(t.cases.begin(), t.cases.end(), [](const OpCase& c) { return c.op == "gelu"; }),
                  t.cases.end());
  CHECK(ops_without(tables, kGrad) == std::vector<std::string>{"gelu"});
  CHECK(ops_without(tables, kParity) == std::vector<std::string>{"gelu"});
  // Marking every remaining matmul case gradient-only leaves matmul without a parity case.
  for (OpTable& t : tables)
    for (OpCase& c : t.cases)
      if (c.op == "matmul") c.grad_only();
  CHECK(ops_without(tables, kParity) == std::vector<std::string>{"gelu", "matmul"});
}

TEST_CASE("every parity case runs its CPU half: float32 forward and backward") {
  // What check_parity does on the CPU side, so that a parity row that cannot run (a wrong shape
  // or argument) fails here too, not only on a machine with a GPU.
  int ran = 0;
  for (const OpTable& t : all_op_tables())
    for (const OpCase& c : t.cases) {
      if (!(c.runs & kParity)) continue;
      INFO(t.family << " table, parity case " << c.name());
      TensorList inputs = make_inputs(c, DType::f32);
      Tensor out;
      CHECK_NOTHROW(out = c.fn(inputs));
      if (out.defined() && out.requires_grad()) CHECK_NOTHROW(out.backward(Tensor::ones(out.shape(), out.dtype())));
      ++ran;
    }
  MESSAGE(ran << " parity cases ran on the CPU");
}
