// Subcommands of the mmfuse binary, one file each, registered by a static Registrar (the
// library and tools are linked whole, so registration survives static linking).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace mmfuse::tools {

// Parsed command line: --flag value, --flag=value, bare --switch, and positional arguments.
class Args {
 public:
  Args(const std::string& command, std::vector<std::string> argv, const std::vector<std::string>& flags,
       const std::vector<std::string>& switches = {});
  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  std::vector<std::string> get_all(const std::string& flag) const;
  int get_int(const std::string& flag, int fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::string command_;
  std::multimap<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

struct Command {
  std::string name;
  std::string summary;  // one line for `mmfuse help`
  std::string usage;    // `mmfuse help NAME`
  std::function<int(const std::vector<std::string>& args)> run;
};

std::map<std::string, Command>& commands();
struct CommandRegistrar {
  explicit CommandRegistrar(Command c) { commands()[c.name] = std::move(c); }
};

int run_command(int argc, char** argv);

// --conv-search benchmark|heuristics and --nondeterministic (train, time): how cuDNN's
// convolution algorithms are chosen (cuda/conv.h). No-ops in a build without CUDA.
void apply_conv_search_flags(const Args& args, const std::string& command);
inline constexpr const char* kConvSearchUsage =
    "  --conv-search S  cuDNN's algorithms: heuristics (default; the same choice in every run, so\n"
    "                   GPU runs and resumes are reproducible) or benchmark (each algorithm timed\n"
    "                   once per shape, the fastest kept: faster in strict fp32, not reproducible)\n"
    "  --nondeterministic  admit cuDNN's nondeterministic (atomic) backward algorithms\n";

}  // namespace mmfuse::tools
