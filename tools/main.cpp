// mmfuse: the command-line tool. Subcommands register themselves (tools/command.h).
#include <cstdio>
#include <exception>

#include "tools/command.h"

int main(int argc, char** argv) {
  try {
    return mmfuse::tools::run_command(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mmfuse: error: %s\n", e.what());
    return 1;
  }
}
