#include "tools/command.h"

#include <algorithm>
#include <cstdio>

#include "base/error.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/conv.h"
#endif

namespace mmfuse::tools {

std::map<std::string, Command>& commands() {
  static std::map<std::string, Command> registry;
  return registry;
}

Args::Args(const std::string& command, std::vector<std::string> argv, const std::vector<std::string>& flags,
           const std::vector<std::string>& switches)
    : command_(command) {
  auto known = [&](const std::vector<std::string>& list, const std::string& f) {
    return std::find(list.begin(), list.end(), f) != list.end();
  };
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0 || a.size() == 2) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (known(switches, name)) {
      values_.emplace(name, inline_value ? value : "1");
    } else if (known(flags, name)) {
      if (!inline_value) {
        MMF_CHECK(i + 1 < argv.size(), Error, command, ": --", name, " needs a value");
        value = argv[++i];
      }
      values_.emplace(name, value);
    } else {
      throw Error(command + ": unknown flag --" + name + " (see `mmfuse help " + command + "`)");
    }
  }
}

std::string Args::get(const std::string& flag, const std::string& fallback) const {
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second;
}

std::vector<std::string> Args::get_all(const std::string& flag) const {
  std::vector<std::string> out;
  for (auto [it, end] = values_.equal_range(flag); it != end; ++it) out.push_back(it->second);
  return out;
}

int Args::get_int(const std::string& flag, int fallback) const {
  if (!has(flag)) return fallback;
  std::string v = get(flag);
  try {
    size_t used = 0;
    int n = std::stoi(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw Error(command_ + ": --" + flag + " expects an integer, got '" + v + "'");
}

namespace {

void print_usage() {
  std::printf("usage: mmfuse <command> [args]\n\ncommands:\n");
  for (const auto& [name, c] : commands()) std::printf("  %-16s %s\n", name.c_str(), c.summary.c_str());
  std::printf("\n`mmfuse help <command>` describes one command.\n");
}

int help(const std::vector<std::string>& args) {
  if (args.empty()) {
    print_usage();
    return 0;
  }
  auto it = commands().find(args[0]);
  if (it == commands().end()) throw Error("help: unknown command '" + args[0] + "'");
  std::printf("%s\n\n%s\n", it->second.summary.c_str(), it->second.usage.c_str());
  return 0;
}

CommandRegistrar help_registrar({"help", "describe the commands", "mmfuse help [command]", help});

}  // namespace

int run_command(int argc, char** argv) {
  if (argc < 2) {
    print_usage();
    return 2;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h") name = "help";
  auto it = commands().find(name);
  if (it == commands().end()) {
    std::fprintf(stderr, "mmfuse: unknown command '%s'\n", name.c_str());
    print_usage();
    return 2;
  }
  return it->second.run(std::vector<std::string>(argv + 2, argv + argc));
}

void apply_conv_search_flags(const Args& args, const std::string& command) {
  std::string search = args.get("conv-search", "heuristics");
  if (search != "benchmark" && search != "heuristics")
    throw Error(command + ": --conv-search must be benchmark or heuristics, got '" + search + "'");
#ifdef MMFUSE_WITH_CUDA
  cuda::set_conv_benchmark(search == "benchmark");
  cuda::set_conv_deterministic(!args.has("nondeterministic"));
#endif
}

}  // namespace mmfuse::tools
