// Every op in core/op_list.h has a finite-difference gradient test.
#include <string>
#include <vector>

#include "core/op_list.h"
#include "tests/gradcheck.h"

TEST_CASE("every op in core/op_list.h has a gradient test") {
  std::vector<std::string> ops = {
#define MMF_OP_NAME(name, ...) #name,
      MMFUSE_OPS(MMF_OP_NAME)
#undef MMF_OP_NAME
  };
  const auto& tested = mmfuse::testing::gradient_tested_ops();
  for (const std::string& op : ops) {
    INFO("op without a gradient test (add MMF_GRAD_TEST(" << op << ")): " << op);
    CHECK(tested.count(op) == 1);
  }
  // And no test claims an op that is not in the list.
  for (const std::string& op : tested) {
    INFO("gradient test for an op missing from core/op_list.h: " << op);
    CHECK(std::find(ops.begin(), ops.end(), op) != ops.end());
  }
}
