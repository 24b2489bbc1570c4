// Long-run memory check: the main job's solver (models/asymfusion/synthetic_solver.prototxt)
// trained for --iterations N (default 10,000), the process's resident set sampled every K
// iterations; after warm-up it must stay flat.
//   bench_long_run [--iterations N] [--every K] [--test-interval T] [--warmup F]
//                  [--max-growth MB] [--solver S]
// The solver samples /proc/self/statm itself at each display iteration (`rss_mb` in its metrics
// log): display is set to K (default N/100) and a thread prints the records as they arrive.
// max_iter is N, so the cosine schedule spans the whole run; tests run every T iterations
// (default 1000; the main job tests every 200 of its 800); no snapshots. The metrics log, the
// solver's own output and the curve go to a temp folder, removed at the end (nothing is
// written into the repository). Verdict: PASS when the least-squares slope of RSS against
// iteration over the samples after warm-up (the first F = 10% of the run) is at most
// --max-growth MB per 1000 iterations (default 1), else FAIL (exit 1).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "core/metrics_log.h"
#include "core/prototxt.h"
#include "core/solver.h"

using namespace mmfuse;
namespace fs = std::filesystem;

namespace {

struct Sample {
  int64_t iter;
  double rss_mb;
};

// Reads the records added to the metrics log since `offset`; complete lines only.
void read_samples(const std::string& path, std::streamoff& offset, std::vector<Sample>& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  in.seekg(offset);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t end = text.rfind('\n');
  if (end == std::string::npos) return;
  std::istringstream lines(text.substr(0, end + 1));
  for (std::string line; std::getline(lines, line);) {
    double iter = 0, rss = 0;
    if (record_number(line, "iter", iter) && record_number(line, "rss_mb", rss))
      out.push_back({static_cast<int64_t>(iter), rss});
  }
  offset += static_cast<std::streamoff>(end + 1);
}

std::string flag_value(int& i, int argc, char** argv) {
  MMF_CHECK(i + 1 < argc, Error, argv[i], " needs a value");
  return argv[++i];
}

}  // namespace

int main(int argc, char** argv) try {
  int64_t iterations = 10000, every = 0, test_interval = 1000;
  double warmup = 0.1, max_growth = 1.0;
  std::string solver_path = "models/asymfusion/synthetic_solver.prototxt";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--iterations") iterations = std::stoll(flag_value(i, argc, argv));
    else if (a == "--every") every = std::stoll(flag_value(i, argc, argv));
    else if (a == "--test-interval") test_interval = std::stoll(flag_value(i, argc, argv));
    else if (a == "--warmup") warmup = std::stod(flag_value(i, argc, argv));
    else if (a == "--max-growth") max_growth = std::stod(flag_value(i, argc, argv));
    else if (a == "--solver") solver_path = flag_value(i, argc, argv);
    else throw Error("unknown argument " + a + " (see the comment at the top of bench/long_run.cpp)");
  }
  MMF_CHECK(iterations > 0 && warmup >= 0 && warmup < 1, Error, "--iterations must be > 0 and --warmup in [0, 1)");
  if (every <= 0) every = std::max<int64_t>(1, iterations / 100);
  // From the repository root, or from the build folder inside it.
  if (!fs::exists(solver_path)) {
    fs::path beside = fs::read_symlink("/proc/self/exe").parent_path().parent_path() / solver_path;
    if (fs::exists(beside)) solver_path = beside.string();
  }

  const fs::path dir = fs::temp_directory_path() / ("mmfuse_long_run_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path dir;
    ~Cleanup() { fs::remove_all(dir); }
  } cleanup{dir};

  proto::SolverParameter param = read_solver(solver_path);
  param.set_max_iter(static_cast<int32_t>(iterations));
  param.set_display(static_cast<int32_t>(every));
  param.set_test_interval(static_cast<int32_t>(test_interval));
  param.set_snapshot(0);
  param.set_snapshot_after_train(false);
  param.set_snapshot_prefix((dir / "run").string());
  param.set_metrics_file((dir / "metrics.jsonl").string());
  const std::string metrics = param.metrics_file(), log_path = (dir / "solver.log").string();
  std::FILE* log = std::fopen(log_path.c_str(), "w");
  MMF_CHECK(log != nullptr, IOError, log_path, ": cannot open for writing");

  SolverOptions options;
  options.out = log;
  Solver solver(param, solver_path, options);
  double start_rss = resident_set_mb();
  std::printf("%s: %lld iterations (batch %lld), RSS every %lld, tests every %lld; RSS after building the nets %.1f MB\n",
              solver_path.c_str(), static_cast<long long>(iterations), static_cast<long long>(solver.batch_size()),
              static_cast<long long>(every), static_cast<long long>(test_interval), start_rss);
  std::printf("%10s %10s %10s\n", "iteration", "RSS MB", "elapsed s");
  std::fflush(stdout);

  // Prints the samples as the solver logs them.
  auto start = std::chrono::steady_clock::now();
  std::atomic<bool> done{false};
  std::vector<Sample> samples;
  std::streamoff offset = 0;
  auto print_new = [&] {
    size_t before = samples.size();
    read_samples(metrics, offset, samples);
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (size_t i = before; i < samples.size(); ++i)
      std::printf("%10lld %10.1f %10.0f\n", static_cast<long long>(samples[i].iter), samples[i].rss_mb, elapsed);
    std::fflush(stdout);
  };
  std::thread monitor([&] {
    while (!done.load()) {
      print_new();
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  Solver::Outcome outcome = Solver::Outcome::finished;
  std::string failure;
  try {
    outcome = solver.solve();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  done.store(true);
  monitor.join();
  print_new();
  std::fclose(log);
  samples.push_back({solver.iter(), resident_set_mb()});  // after the last test
  std::printf("%10lld %10.1f  (end of the run)\n", static_cast<long long>(samples.back().iter), samples.back().rss_mb);
  if (!failure.empty() || outcome != Solver::Outcome::finished) {
    std::printf("the run did not finish: %s\n", failure.empty() ? solver.message().c_str() : failure.c_str());
    std::ifstream in(log_path);
    std::printf("%s", std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()).c_str());
    return 1;
  }

  // The samples from warm-up on: the first at or past warmup * iterations.
  const auto warm_it = std::find_if(samples.begin(), samples.end(), [&](const Sample& s) {
    return static_cast<double>(s.iter) >= warmup * static_cast<double>(iterations);
  });
  std::vector<Sample> after(warm_it, samples.end());
  MMF_CHECK(after.size() >= 2, Error, "too few samples after warm-up (", after.size(), "): lower --every");
  auto max_it = std::max_element(samples.begin(), samples.end(),
                                 [](const Sample& a, const Sample& b) { return a.rss_mb < b.rss_mb; });
  double mean_x = 0, mean_y = 0;
  for (const Sample& s : after) mean_x += static_cast<double>(s.iter), mean_y += s.rss_mb;
  mean_x /= static_cast<double>(after.size());
  mean_y /= static_cast<double>(after.size());
  double sxy = 0, sxx = 0;
  for (const Sample& s : after) {
    sxy += (static_cast<double>(s.iter) - mean_x) * (s.rss_mb - mean_y);
    sxx += (static_cast<double>(s.iter) - mean_x) * (static_cast<double>(s.iter) - mean_x);
  }
  double slope = sxx > 0 ? sxy / sxx * 1000 : 0;  // MB per 1000 iterations
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("\nRSS after warm-up (iteration %lld): %.1f MB\n", static_cast<long long>(after.front().iter),
              after.front().rss_mb);
  std::printf("max: %.1f MB (iteration %lld); final: %.1f MB (iteration %lld), %+.1f MB since warm-up\n",
              max_it->rss_mb, static_cast<long long>(max_it->iter), samples.back().rss_mb,
              static_cast<long long>(samples.back().iter), samples.back().rss_mb - after.front().rss_mb);
  std::printf("growth after warm-up: %+.3f MB per 1000 iterations (least squares over %zu samples); %.0f s in all\n",
              slope, after.size(), seconds);
  bool pass = slope <= max_growth;
  std::printf("%s: growth %s %.3g MB per 1000 iterations\n", pass ? "PASS" : "FAIL", pass ? "<=" : ">", max_growth);
  return pass ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_long_run: %s\n", e.what());
  return 2;
}
