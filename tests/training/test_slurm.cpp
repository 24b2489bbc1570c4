// Data-parallel training launched by Slurm's srun (docs/distributed.md, "Slurm (srun,
// sbatch)"). Each case that launches runs a private one-node cluster (scripts/slurm-local) for
// its own duration: a LocalCluster object starts it and its destructor stops it, also when a
// check fails; the CTest fixture `slurm_cleanup` stops what a crash or a timeout of the test
// binary left behind (MMFUSE_SLURM_DIR names the cluster's folder there). The tasks join one
// MPI job through Slurm's PMIx plugin (`srun --mpi=pmix`; Debian's Open MPI has no Slurm
// PMI-1/PMI-2 support). Cases: the detection of an srun step from its variables and the stop of
// a process MPI did not join (no Slurm needed); `srun -n 2` x batch 8 against 1 process x batch
// 16 on LeNet, to the tolerance of the mpirun test (tests/training/test_distributed.cpp); the
// same across two nodes (`srun -N 2`, scripts/slurm-local --nodes 2: one task a node, each its
// node's local rank 0); a killed and a stalled task; `scancel`, `scancel --signal=USR1` and
// SIGUSR1 to srun (and scancel --signal=USR1 on two nodes); srun
// without PMIx. Skipped, with the reason, without Slurm's daemons and client, this build's MPI
// or Fashion-MNIST. CTest entry `slurm`, labels mpi and slurm.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/distributed.h"
#include "datasets/fashion_mnist.h"
#include "doctest/doctest.h"
#include "tests/temp_dir.h"
#include "tests/training/data_parallel_runs.h"

namespace fs = std::filesystem;
using namespace mmfuse::testing;

namespace {

// Sets launcher variables for one scope and puts back those of the process after it.
class LauncherEnvironment {
 public:
  LauncherEnvironment() {
    for (const char* name : kNames) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(name);
    }
  }
  ~LauncherEnvironment() {
    for (const auto& [name, value] : saved_)
      if (value)
        ::setenv(name, value->c_str(), 1);
      else
        ::unsetenv(name);
  }
  void set(const char* name, const char* value) { ::setenv(name, value, 1); }

 private:
  static constexpr const char* kNames[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS",
                                           "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

// Why no srun job can run here; empty when one can.
std::string skip_reason() {
  if (!mmfuse::dist::built_with_mpi()) return "this build has no MPI (apt-get install libopenmpi-dev, reconfigure)";
  for (const char* tool : {"srun", "scancel", "slurmctld", "slurmd"})
    if (std::system(("command -v " + std::string(tool) + " > /dev/null 2>&1").c_str()) != 0)
      return std::string("no ") + tool + " on PATH (apt-get install --no-install-recommends slurmctld slurmd slurm-client)";
  if (!fs::exists(mmfuse::datasets::fashion_mnist_dir()))
    return "Fashion-MNIST not found in " + mmfuse::datasets::fashion_mnist_dir() + " (apt-get install dataset-fashion-mnist)";
  return "";
}
#define SLURM_OR_SKIP()                                \
  if (std::string why = skip_reason(); !why.empty()) { \
    MESSAGE("skipped: ", why);                         \
    return;                                            \
  }

// scripts/slurm-local's cluster of `nodes` nodes in MMFUSE_SLURM_DIR, else in <dir>/cluster,
// for one scope.
struct LocalCluster {
  std::string folder, conf;
  explicit LocalCluster(const TempDir& dir, int nodes = 1) {
    const char* given = std::getenv("MMFUSE_SLURM_DIR");
    folder = given && *given ? given : dir / "cluster";
    conf = folder + "/slurm.conf";
    const std::string log = dir / "cluster.log";
    const int status =
        std::system((script("start") + " --nodes " + std::to_string(nodes) + " > '" + log + "' 2>&1").c_str());
    REQUIRE_MESSAGE(status == 0, "scripts/slurm-local start failed:\n", read_text(log));
  }
  ~LocalCluster() {
    const int status = std::system((script("stop") + " > /dev/null 2>&1").c_str());
    if (status != 0) std::fprintf(stderr, "scripts/slurm-local stop %s failed (exit status %d)\n", folder.c_str(), status);
  }
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // `mmfuse args` in `dir` as `srun -n 2 <srun_options> [wrapper]` on this cluster (1 OpenMP
  // thread a task); output in <log>.
  std::string srun(const TempDir& dir, const std::string& srun_options, const std::string& args,
                   const std::string& log, const std::string& wrapper = "") const {
    return "cd '" + dir.path.string() + "' && SLURM_CONF='" + conf + "' OMP_NUM_THREADS=1 srun -n 2 " + srun_options +
           " " + wrapper + " '" + mmfuse_binary().string() + "' " + args + " > '" + (dir / log) + "' 2>&1";
  }
  std::string slurm_command(const std::string& command) const { return "SLURM_CONF='" + conf + "' " + command; }

  // `scripts/slurm-local <action> <folder>`, quoted for the shell.
  std::string script(const std::string& action) const {
    std::string command = "'";
    command += (source_root() / "scripts/slurm-local").string();
    return command + "' " + action + " '" + folder + "'";
  }
};

// Runs `command` and returns its exit status; a run past `seconds` is killed and fails the check.
int run_within(const std::string& command, double seconds) {
  double took = 0;
  const int code = wait_for(spawn_shell(command), seconds, took);
  CHECK_MESSAGE(code != -1, "still running after ", seconds, " s: ", command);
  return code;
}

// LeNet of batch 8 with a solver of `iterations` steps (snapshots under out/<name>) in `dir`.
void lenet_job(const TempDir& dir, const std::string& name, int iterations, const std::string& extra = "") {
  write_text(dir, "lenet_8.prototxt", lenet_net(8));
  write_text(dir, name + ".prototxt", data_parallel_solver("lenet_8.prototxt", name, iterations, extra));
}

// The .solverstate files of the solver `name` under dir/out.
int snapshots(const TempDir& dir, const std::string& name) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir / "out"))
    if (e.path().extension() == ".solverstate" && e.path().filename().string().rfind(name + "_", 0) == 0) ++n;
  return n;
}

// The child of `parent` named `comm` (the srun that the shell of spawn_shell started), or -1.
pid_t child_named(pid_t parent, const std::string& comm) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (read_text(e.path().string() + "/comm") != comm + "\n") continue;
    // stat: pid (comm) state ppid ...
    const std::string stat = read_text(e.path().string() + "/stat");
    const size_t close = stat.rfind(')');
    if (close != std::string::npos && std::stoi(stat.substr(stat.find(' ', close + 2) + 1)) == parent)
      return static_cast<pid_t>(std::stoi(name));
  }
  return -1;
}

}  // namespace

TEST_CASE("slurm: an srun step's task count and local rank are read from SLURM_STEP_NUM_TASKS and SLURM_LOCALID") {
  LauncherEnvironment env;
  CHECK(mmfuse::dist::launcher_world_size() == 1);
  CHECK(mmfuse::dist::launcher_local_rank() == 0);
  // A batch script of `sbatch -n 4` (or an salloc shell): the allocation's task count is set,
  // but `mmfuse train` run there directly is one process.
  env.set("SLURM_NTASKS", "4");
  env.set("SLURM_LOCALID", "0");
  CHECK(mmfuse::dist::launcher_world_size() == 1);
  // Task 1 of `srun -n 2` in that allocation.
  env.set("SLURM_STEP_NUM_TASKS", "2");
  env.set("SLURM_LOCALID", "1");
  CHECK(mmfuse::dist::launcher_world_size() == 2);
  CHECK(mmfuse::dist::launcher_local_rank() == 1);
  // mpirun inside the allocation: its own variables take precedence.
  env.set("OMPI_COMM_WORLD_SIZE", "3");
  env.set("OMPI_COMM_WORLD_LOCAL_RANK", "2");
  CHECK(mmfuse::dist::launcher_world_size() == 3);
  CHECK(mmfuse::dist::launcher_local_rank() == 2);
}

TEST_CASE("slurm: a process that MPI did not join to its launcher's job stops instead of training alone") {
  if (!mmfuse::dist::built_with_mpi()) {
    MESSAGE("skipped: this build has no MPI (apt-get install libopenmpi-dev, reconfigure)");
    return;
  }
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) {  // Open MPI starts a singleton with its orted
    MESSAGE("skipped: no mpirun on PATH (apt-get install openmpi-bin)");
    return;
  }
  // PMI_SIZE=2 outside any launcher: MPI starts the process as a job of one, as an MPI that
  // cannot reach srun's process manager does with each task (MPICH under `srun --mpi=none`).
  TempDir dir("slurm_alone");
  write_text(dir, "lenet_8.prototxt", lenet_net(8));
  write_text(dir, "s.prototxt", data_parallel_solver("lenet_8.prototxt", "s", 1));
  LauncherEnvironment env;
  env.set("PMI_SIZE", "2");
  std::string out;
  CHECK(run_mmfuse(dir.path, "train --solver s.prototxt", out) == 4);
  INFO(out);
  CHECK(out.find("the launcher started 2 processes (PMI_SIZE), but MPI joined 1 of them") != std::string::npos);
  CHECK(!fs::exists(dir / "out"));
}

TEST_CASE("slurm: srun -n 2 --mpi=pmix x batch 8 trains LeNet as 1 process x batch 16") {
  SLURM_OR_SKIP();
  TempDir dir("slurm_lenet");
  LocalCluster cluster(dir);
  write_text(dir, "lenet_16.prototxt", lenet_net(16));
  write_text(dir, "one.prototxt", data_parallel_solver("lenet_16.prototxt", "one", 4));
  lenet_job(dir, "two", 4);
  std::string out;
  REQUIRE_MESSAGE(run_mmfuse(dir.path, "train --solver one.prototxt", out) == 0, out);
  REQUIRE_MESSAGE(run_within(cluster.srun(dir, "--mpi=pmix", "train --solver two.prototxt", "two.log"), 60) == 0,
                  read_text(dir / "two.log"));
  const std::string log = read_text(dir / "two.log");
  INFO(log);
  CHECK(log.find("data-parallel over 2 ranks (global batch 16)") != std::string::npos);
  // Within the mpirun test's tolerance: losses to a relative 1e-5, weights to 1e-6 + 1e-5 |w|.
  check_same_losses(dir / "out/two_metrics.jsonl", dir / "out/one_metrics.jsonl", 4);
  CHECK(weight_gap(dir / "out/two_iter_4.weights", dir / "out/one_iter_4.weights") <= 1);
  // Task 0 alone writes: one snapshot, one set of progress lines.
  CHECK(snapshots(dir, "two") == 1);
  CHECK(count_of(log, "Iteration 3 ") == 1);
}

const char* const kTwoNodes = "-N 2 --ntasks-per-node=1 --mpi=pmix";

TEST_CASE("slurm: srun -N 2 --ntasks-per-node=1 --mpi=pmix x batch 8 on two nodes trains LeNet as 1 process x batch 16") {
  SLURM_OR_SKIP();
  TempDir dir("slurm_nodes");
  LocalCluster cluster(dir, 2);
  write_text(dir, "lenet_16.prototxt", lenet_net(16));
  write_text(dir, "one.prototxt", data_parallel_solver("lenet_16.prototxt", "one", 4));
  lenet_job(dir, "two", 4);
  // Each task records what Slurm told it, then becomes mmfuse.
  write_text(dir, "record.sh",
             "echo \"$SLURM_NODEID $SLURM_LOCALID $SLURMD_NODENAME\" > \"task_$SLURM_PROCID.env\"\nexec \"$@\"\n");
  std::string out;
  REQUIRE_MESSAGE(run_mmfuse(dir.path, "train --solver one.prototxt", out) == 0, out);
  REQUIRE_MESSAGE(
      run_within(cluster.srun(dir, kTwoNodes, "train --solver two.prototxt", "two.log", "sh record.sh"), 60) == 0,
      read_text(dir / "two.log"));
  const std::string log = read_text(dir / "two.log");
  INFO(log);
  // Task k ran on node k + 1 (n1, n2) as its local rank 0.
  CHECK(read_text(dir / "task_0.env") == "0 0 n1\n");
  CHECK(read_text(dir / "task_1.env") == "1 0 n2\n");
  CHECK(log.find("data-parallel over 2 ranks (global batch 16)") != std::string::npos);
  // The one-node case's tolerance: losses to a relative 1e-5, weights to 1e-6 + 1e-5 |w|.
  check_same_losses(dir / "out/two_metrics.jsonl", dir / "out/one_metrics.jsonl", 4);
  CHECK(weight_gap(dir / "out/two_iter_4.weights", dir / "out/one_iter_4.weights") <= 1);
  // Rank 0 alone writes: one snapshot, one progress line an iteration.
  CHECK(snapshots(dir, "two") == 1);
  for (int i = 0; i < 4; ++i) CHECK_MESSAGE(count_of(log, "Iteration " + std::to_string(i) + " ") == 1, "iteration ", i);
}

TEST_CASE("slurm: scancel --signal=USR1 stops the tasks of both nodes at one iteration with one snapshot") {
  SLURM_OR_SKIP();
  TempDir dir("slurm_nodes_stop");
  LocalCluster cluster(dir, 2);
  lenet_job(dir, "stop", 100000, "collective_timeout: 20\n");
  const pid_t run_pid = spawn_shell(cluster.srun(dir, kTwoNodes, "train --solver stop.prototxt", "stop.log"));
  REQUIRE_MESSAGE(wait_for_text(dir / "stop.log", "Iteration 3 ", 30), read_text(dir / "stop.log"));
  CHECK(std::system(cluster.slurm_command("scancel --signal=USR1 --partition=debug").c_str()) == 0);
  double took = 0;
  const int code = wait_for(run_pid, 30, took);
  const std::string log = read_text(dir / "stop.log");
  INFO(log);
  CHECK(code == 0);
  // Rank 0 prints the line; the ranks agree on the iteration, so its one snapshot holds for both.
  CHECK(count_of(log, "interrupted (SIGINT/SIGTERM/SIGUSR1) at iteration") == 1);
  CHECK(snapshots(dir, "stop") == 1);
}

TEST_CASE("slurm: a killed or stalled task stops the step with an error naming it") {
  SLURM_OR_SKIP();
  TempDir dir("slurm_dead");
  LocalCluster cluster(dir);
  for (const std::string marker : {"killed", "stalled"}) {
    lenet_job(dir, marker, 100000, "collective_timeout: 2\n");
    const pid_t run_pid = spawn_shell(cluster.srun(dir, "--mpi=pmix", "train --solver " + marker + ".prototxt", marker + ".log"));
    REQUIRE_MESSAGE(wait_for_text(dir / (marker + ".log"), "Iteration 3 ", 30), read_text(dir / (marker + ".log")));
    const pid_t task1 = find_process("mmfuse", marker + ".prototxt", "SLURM_PROCID=1");
    REQUIRE(task1 > 0);
    ::kill(task1, marker == "killed" ? SIGKILL : SIGSTOP);
    double took = 0;
    const int code = wait_for(run_pid, 30, took);
    ::kill(task1, SIGKILL);
    const std::string log = read_text(dir / (marker + ".log"));
    INFO(marker, ": ", log);
    CHECK(code != 0);
    CHECK(code != -1);
    CHECK(took < 20);
    if (marker == "killed") {
      // Slurm's PMIx plugin sees the task end and cancels the step; srun names the task.
      CHECK(log.find("task 1: Killed") != std::string::npos);
    } else {
      // Rank 0 names it after collective_timeout and aborts, which ends the step.
      CHECK(log.find("rank 1 did not answer") != std::string::npos);
      CHECK(log.find("collective_timeout") != std::string::npos);
    }
  }
}

TEST_CASE("slurm: scancel, scancel --signal=USR1 and SIGUSR1 to srun stop every task with one snapshot") {
  SLURM_OR_SKIP();
  TempDir dir("slurm_stop");
  LocalCluster cluster(dir);
  for (const std::string marker : {"usr1_scancel", "usr1_srun", "term_scancel"}) {
    lenet_job(dir, marker, 100000, "collective_timeout: 20\n");
    const pid_t run_pid = spawn_shell(cluster.srun(dir, "--mpi=pmix", "train --solver " + marker + ".prototxt", marker + ".log"));
    REQUIRE_MESSAGE(wait_for_text(dir / (marker + ".log"), "Iteration 3 ", 30), read_text(dir / (marker + ".log")));
    if (marker == "usr1_srun") {
      // srun forwards SIGUSR1 to every task (SIGINT, twice, and SIGTERM it answers by killing the
      // step, without a snapshot: docs/distributed.md).
      const pid_t srun = child_named(run_pid, "srun");
      REQUIRE(srun > 0);
      ::kill(srun, SIGUSR1);
    } else {
      // Every task of the job's steps gets the signal; a plain scancel (and the time limit) sends
      // SIGTERM, then SIGKILL after KillWait (5 s here, 30 s by default).
      const std::string signal = marker == "term_scancel" ? "" : "--signal=USR1 ";
      CHECK(std::system(cluster.slurm_command("scancel " + signal + "--partition=debug").c_str()) == 0);
    }
    double took = 0;
    const int code = wait_for(run_pid, 30, took);
    const std::string log = read_text(dir / (marker + ".log"));
    INFO(marker, ": ", log);
    CHECK(code == 0);
    CHECK(log.find("interrupted (SIGINT/SIGTERM/SIGUSR1) at iteration") != std::string::npos);
    CHECK(snapshots(dir, marker) == 1);
  }
}

TEST_CASE("slurm: srun without PMIx fails saying to launch with --mpi=pmix") {
  SLURM_OR_SKIP();
  TempDir dir("slurm_nopmix");
  LocalCluster cluster(dir);
  lenet_job(dir, "nopmix", 4);
  const int code = run_within(cluster.srun(dir, "--mpi=none", "train --solver nopmix.prototxt", "nopmix.log"), 60);
  const std::string log = read_text(dir / "nopmix.log");
  INFO(log);
  CHECK(code != 0);
  CHECK(log.find("srun --mpi=pmix") != std::string::npos);
  CHECK(!fs::exists(dir / "out"));
}
