// Data-parallel training under OpenMPI's launcher (docs/distributed.md): 2 ranks of batch B
// against 1 process of batch 2B (LeNet; a small AsymFusion net with frozen, synchronised and
// per-rank BatchNorm), resume under 2 ranks, gradient buckets overlapping backward against the
// post-backward reduction, a stalled and a killed rank, Ctrl-C. Each case
// runs `mpirun -np 2 mmfuse train` on a few iterations of a tiny net. Two cases launch with a
// hostfile over ssh instead (LeNet against 1 process, a rank killed on one node): two host names
// of a private sshd on 127.0.0.1 (scripts/ssh-local, in MMFUSE_SSH_DIR where set; the fixture
// ssh_cleanup stops what a crash left), one rank a "node". Skipped, with a message, where
// mpirun or this build's MPI support is missing (the hostfile cases also without sshd or ssh);
// CTest entry `distributed`, label `mpi`.
//
// Tolerance: 2 ranks sum two half-batch gradients where one process sums the whole batch in
// one product, so the float32 results agree to rounding, not to the bit: losses to a relative
// 1e-5, weights to 1e-6 + 1e-5 |w| after 4 steps (seen: ~1 ulp). Where the reduction order is
// the same (per-rank BatchNorm statistics against a 1-process run of batch B, resume against
// the uninterrupted run, buckets overlapping backward against buckets after it) the comparison
// is bit-exact.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "core/distributed.h"
#include "datasets/fashion_mnist.h"
#include "doctest/doctest.h"
#include "tests/temp_dir.h"
#include "tests/training/data_parallel_runs.h"

namespace fs = std::filesystem;
using namespace mmfuse::testing;

namespace {

// Why the MPI cases cannot run here; empty when they can.
std::string skip_reason() {
  if (!mmfuse::dist::built_with_mpi()) return "this build has no MPI (apt-get install libopenmpi-dev, reconfigure)";
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) return "no mpirun on PATH (apt-get install openmpi-bin)";
  return "";
}
#define MPI_OR_SKIP()                                        \
  if (std::string why = skip_reason(); !why.empty()) {       \
    MESSAGE("skipped: ", why);                               \
    return;                                                  \
  }

// `mmfuse args` in `dir` under `ranks` processes (mpirun on this machine, or `launcher` where
// given, which then starts mmfuse; 1: no launcher); output in <log>.
std::string command(const TempDir& dir, int ranks, const std::string& args, const std::string& log,
                    const std::string& launcher = "") {
  std::string prefix = ranks == 1         ? ""
                       : launcher.empty() ? "mpirun --oversubscribe --allow-run-as-root -np " + std::to_string(ranks) + " "
                                          : launcher + " ";
  return "cd '" + dir.path.string() + "' && OMP_NUM_THREADS=1 " + prefix + "'" + mmfuse_binary().string() + "' " +
         args + " > '" + (dir / log) + "' 2>&1";
}
int run(const TempDir& dir, int ranks, const std::string& args, const std::string& log, const std::string& launcher = "") {
  int status = std::system(command(dir, ranks, args, log, launcher).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A tiny AsymFusion net (channel shuffle and pixel shift in stages 1 and 2, modality-specific
// BatchNorm, the learned ensemble) on the synthetic RGB-D set at 32x32, batch `batch`. `bn`:
// "frozen" (use_global_stats: no batch statistics in play), "sync" or "" (per rank). Dropout
// off (each rank draws its own masks) and the loss normalised by the batch (with VALID each
// rank divides by its own count of labelled pixels: docs/distributed.md).
std::string fusion(const TempDir& dir, int batch, const std::string& bn, const std::string& dataset = "synthetic") {
  std::string zoo = "zoo asymfusion --dataset " + dataset + " --blocks 1,1,1,1 --width 4 --decoder-width 4 --stages 1,2 "
                    "--batch " + std::to_string(batch) + " --crop 32" + (bn == "frozen" ? " --frozen-bn" : "");
  REQUIRE(run(dir, 1, zoo, "zoo.prototxt") == 0);
  std::string net = read_text(dir / "zoo.prototxt");
  replace_all(net, "dropout_ratio: 0.5", "dropout_ratio: 0");
  replace_all(net, "loss_param { ignore_label: 255", "loss_param { normalization: BATCH_SIZE ignore_label: 255");
  if (bn == "sync") replace_all(net, "modalities: 2 moving_average_fraction", "modalities: 2 sync: true moving_average_fraction");
  REQUIRE(net.find(dataset == "scenes" ? "SceneData" : "SyntheticRgbdData") != std::string::npos);
  return net;
}

// 1 process of batch 2B and 2 ranks of batch B, `iterations` steps each; their outputs are
// out/one_* and out/two_*.
// `launcher`: as command()'s.
void one_against_two(const TempDir& dir, const std::string& one_net, const std::string& two_net, int iterations,
                     const std::string& extra = "", const std::string& launcher = "") {
  const std::string kind = one_net.find("LeNet") != std::string::npos ? "lenet_" : "";
  write_text(dir, kind + "one.prototxt", one_net);
  write_text(dir, kind + "two.prototxt", two_net);
  write_text(dir, "one_solver.prototxt", data_parallel_solver(kind + "one.prototxt", "one", iterations, extra));
  write_text(dir, "two_solver.prototxt", data_parallel_solver(kind + "two.prototxt", "two", iterations, extra));
  REQUIRE_MESSAGE(run(dir, 1, "train --solver one_solver.prototxt", "one.log") == 0, read_text(dir / "one.log"));
  REQUIRE_MESSAGE(run(dir, 2, "train --solver two_solver.prototxt", "two.log", launcher) == 0, read_text(dir / "two.log"));
}

}  // namespace

TEST_CASE("distributed: the launcher's process count is read from its environment") {
  const char* names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
  for (const char* name : names) {
    std::string saved = std::getenv(name) ? std::getenv(name) : "";
    ::setenv(name, "3", 1);
    CHECK(mmfuse::dist::launcher_world_size() == 3);
    if (saved.empty())
      ::unsetenv(name);
    else
      ::setenv(name, saved.c_str(), 1);
  }
  // The test binary is no rank of a job: one process of one, every collective the identity.
  CHECK(mmfuse::dist::world().size() == 1);
  double v[2] = {1.5, -2};
  mmfuse::dist::world().allreduce_sum(v, 2, "test");
  CHECK(v[0] == 1.5);
  CHECK(mmfuse::dist::world().agree_sum({4.0}, "test")[0] == 4.0);
}

TEST_CASE("distributed: a solver with `player`s is refused under the launcher, before any net") {
  MPI_OR_SKIP();
  TempDir dir("dist_players");
  std::ofstream(dir / "gan_solver.prototxt") << "player { name: 'g' net: 'g.prototxt' }\n"
                                                "player { name: 'd' net: 'd.prototxt' }\n"
                                                "adversarial { fake: 'fake' real: 'real' }\nmax_iter: 2\n";
  CHECK(run(dir, 2, "train --solver gan_solver.prototxt", "log.txt") != 0);
  const std::string log = read_text(dir / "log.txt");
  CHECK_MESSAGE(log.find("gan_solver.prototxt: this solver trains `player`s; the multi-net solver runs in one process "
                         "(no mpirun)") != std::string::npos, log);
}

TEST_CASE("distributed: LeNet, 2 ranks x 8 against 1 process x 16") {
  MPI_OR_SKIP();
  if (!fs::exists(mmfuse::datasets::fashion_mnist_dir())) {
    MESSAGE("skipped: Fashion-MNIST not found in ", mmfuse::datasets::fashion_mnist_dir(),
            " (apt-get install dataset-fashion-mnist)");
    return;
  }
  TempDir dir("dist_lenet");
  one_against_two(dir, lenet_net(16), lenet_net(8), 4);
  const std::string log = read_text(dir / "two.log");
  CHECK(log.find("data-parallel over 2 ranks (global batch 16)") != std::string::npos);
  check_same_losses(dir / "out/two_metrics.jsonl", dir / "out/one_metrics.jsonl", 4);
  CHECK(weight_gap(dir / "out/two_iter_4.weights", dir / "out/one_iter_4.weights") <= 1);
  // Rank 0 alone writes: one snapshot, one metrics file, one set of progress lines.
  CHECK(fs::exists(dir / "out/two_iter_4.solverstate"));
  CHECK(count_of(log, "Iteration 3 ") == 1);
}

namespace {

// Why the hostfile case cannot run here (beyond MPI_OR_SKIP's reasons); empty when it can.
std::string ssh_skip_reason() {
  const char* sshd = std::getenv("MMFUSE_SSHD");
  const std::string sshd_path = sshd && *sshd ? sshd : "/usr/sbin/sshd";
  if (::access(sshd_path.c_str(), X_OK) != 0) return "no " + sshd_path + " (apt-get install openssh-server)";
  for (const char* tool : {"ssh", "ssh-keygen"})
    if (std::system(("command -v " + std::string(tool) + " > /dev/null 2>&1").c_str()) != 0)
      return std::string("no ") + tool + " on PATH (apt-get install openssh-client)";
  if (!fs::exists(mmfuse::datasets::fashion_mnist_dir()))
    return "Fashion-MNIST not found in " + mmfuse::datasets::fashion_mnist_dir() + " (apt-get install dataset-fashion-mnist)";
  return "";
}

// MPI_OR_SKIP, then the hostfile cases' own needs.
#define HOSTFILE_OR_SKIP()                                    \
  MPI_OR_SKIP();                                              \
  if (std::string why = ssh_skip_reason(); !why.empty()) {    \
    MESSAGE("skipped: ", why);                                \
    return;                                                   \
  }

// scripts/ssh-local's two "machines" mmfuse-node1 and mmfuse-node2 (a private sshd on
// 127.0.0.1) in MMFUSE_SSH_DIR, else in <dir>/hosts, for one scope: the destructor stops the
// sshd and whatever its sessions left, also when a check fails.
struct LocalHosts {
  std::string folder, options;
  explicit LocalHosts(const TempDir& dir) {
    const char* given = std::getenv("MMFUSE_SSH_DIR");
    folder = given && *given ? given : dir / "hosts";
    const std::string out = dir / "ssh-local.out", err = dir / "ssh-local.log";
    const int status = std::system((script("start") + " > '" + out + "' 2> '" + err + "'").c_str());
    REQUIRE_MESSAGE(status == 0, "scripts/ssh-local start failed:\n", read_text(err));
    options = read_text(out);
    while (!options.empty() && options.back() == '\n') options.pop_back();
    REQUIRE_MESSAGE(options.find("--hostfile") != std::string::npos, options);
  }
  ~LocalHosts() {
    const int status = std::system((script("stop") + " > /dev/null 2>&1").c_str());
    if (status != 0) std::fprintf(stderr, "scripts/ssh-local stop %s failed (exit status %d)\n", folder.c_str(), status);
  }
  LocalHosts(const LocalHosts&) = delete;
  LocalHosts& operator=(const LocalHosts&) = delete;

  // `scripts/ssh-local <action> <folder>`, quoted for the shell.
  std::string script(const std::string& action) const {
    std::string command = "'";  // (not "'" + std::string&&: GCC 12's -Wrestrict false positive)
    command += (source_root() / "scripts/ssh-local").string();
    return command + "' " + action + " '" + folder + "'";
  }
  // mpirun over these hosts, 2 ranks, one a node (the ranks get no environment of mpirun's but
  // what -x forwards), each started through `wrapper` where given.
  std::string launcher(const std::string& wrapper = "") const {
    std::string forward = " -x OMP_NUM_THREADS";
    if (const char* data = std::getenv("MMFUSE_FASHION_MNIST"); data && *data) forward += " -x MMFUSE_FASHION_MNIST";
    return "mpirun " + options + " -np 2 --display-map" + forward + (wrapper.empty() ? "" : " '" + wrapper + "'");
  }
};

// The NAME=value lines of a file as a map.
std::map<std::string, std::string> variables(const std::string& path) {
  std::map<std::string, std::string> out;
  std::istringstream in(read_text(path));
  for (std::string line; std::getline(in, line);)
    if (size_t eq = line.find('='); eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  return out;
}

}  // namespace

TEST_CASE("distributed: LeNet over ssh on two nodes of a hostfile, 2 ranks x 8 against 1 process x 16") {
  HOSTFILE_OR_SKIP();
  // `mpirun --hostfile` starts an orted on each node through ssh (scripts/ssh-local: two host
  // names, one sshd on 127.0.0.1), each orted its node's one rank; the ranks talk over TCP.
  TempDir dir("dist_hostfile");
  LocalHosts hosts(dir);
  // Each rank records what OpenMPI and sshd gave it, then becomes mmfuse.
  write_text(dir, "record.sh",
             "#!/bin/sh\n{ env | grep -E '^(OMPI_COMM_WORLD_[A-Z_]*|OMPI_MCA_orte_local_daemon_uri|SSH_CONNECTION)='; "
             "echo \"PARENT=$(cat /proc/$PPID/comm)\"; } > \"rank$OMPI_COMM_WORLD_RANK.env\"\nexec \"$@\"\n");
  fs::permissions(dir / "record.sh", fs::perms::owner_all);
  one_against_two(dir, lenet_net(16), lenet_net(8), 4, "", hosts.launcher(dir / "record.sh"));
  const std::string log = read_text(dir / "two.log");
  INFO(log);
  CHECK(log.find("data-parallel over 2 ranks (global batch 16)") != std::string::npos);
  check_same_losses(dir / "out/two_metrics.jsonl", dir / "out/one_metrics.jsonl", 4);
  CHECK(weight_gap(dir / "out/two_iter_4.weights", dir / "out/one_iter_4.weights") <= 1);
  // Rank 0 alone writes: one snapshot, one set of progress lines.
  CHECK(fs::exists(dir / "out/two_iter_4.solverstate"));
  CHECK(!fs::exists(dir / "out/two_iter_3.solverstate"));
  CHECK(count_of(log, "Iteration 3 ") == 1);

  // OpenMPI's map (--display-map, printed by mpirun and each orted) puts rank r on node r + 1.
  for (int r = 0; r < 2; ++r) {
    const size_t node = log.find("Data for node: mmfuse-node" + std::to_string(r + 1));
    REQUIRE(node != std::string::npos);
    CHECK(log.substr(node, log.find("Data for node:", node + 1) - node).find("Process rank: " + std::to_string(r)) !=
          std::string::npos);
  }
  // Each rank came through a session of this sshd (its client port is one of the log's accepted
  // connections), from an orted of its own (OpenMPI's daemon of its node: vpid 1 and 2; mpirun's
  // own node, vpid 0, has no slot), and is its node's only rank.
  const std::string port = read_text(hosts.folder + "/port").substr(0, read_text(hosts.folder + "/port").find('\n'));
  const std::string sshd_log = read_text(hosts.folder + "/sshd.log");
  std::set<std::string> daemons;
  for (int r = 0; r < 2; ++r) {
    auto v = variables(dir / ("rank" + std::to_string(r) + ".env"));
    INFO("rank ", r, ": ", read_text(dir / ("rank" + std::to_string(r) + ".env")), "\nsshd: ", sshd_log);
    CHECK(v["OMPI_COMM_WORLD_RANK"] == std::to_string(r));
    CHECK(v["OMPI_COMM_WORLD_SIZE"] == "2");
    CHECK(v["OMPI_COMM_WORLD_LOCAL_RANK"] == "0");
    CHECK(v["OMPI_COMM_WORLD_LOCAL_SIZE"] == "1");
    CHECK(v["PARENT"] == "orted");
    // SSH_CONNECTION: client address, client port, server address, server port.
    std::istringstream connection(v["SSH_CONNECTION"]);
    std::string client, client_port, server, server_port;
    connection >> client >> client_port >> server >> server_port;
    CHECK(server == "127.0.0.1");
    CHECK(server_port == port);
    CHECK(!client_port.empty());
    CHECK(sshd_log.find("Accepted publickey for ") != std::string::npos);
    CHECK(sshd_log.find(" from 127.0.0.1 port " + client_port + " ssh2") != std::string::npos);
    // "<jobid>.<vpid>;tcp://..."
    const std::string uri = v["OMPI_MCA_orte_local_daemon_uri"];
    const size_t dot = uri.find('.'), semicolon = uri.find(';');
    REQUIRE(dot != std::string::npos);
    REQUIRE(semicolon != std::string::npos);
    daemons.insert(uri.substr(dot + 1, semicolon - dot - 1));
  }
  CHECK(daemons == std::set<std::string>{"1", "2"});
}

TEST_CASE("distributed: AsymFusion with frozen BatchNorm, 2 ranks x 2 against 1 process x 4") {
  MPI_OR_SKIP();
  TempDir dir("dist_fusion");
  one_against_two(dir, fusion(dir, 4, "frozen"), fusion(dir, 2, "frozen"), 4);
  check_same_losses(dir / "out/two_metrics.jsonl", dir / "out/one_metrics.jsonl", 4);
  CHECK(weight_gap(dir / "out/two_iter_4.weights", dir / "out/one_iter_4.weights") <= 1);
  // `mmfuse test` under 2 ranks scores the samples of 1 process of twice the batch: the
  // confusion matrices summed over the ranks give the same scores.
  REQUIRE(run(dir, 1, "test --model one.prototxt --weights out/one_iter_4.weights --iterations 3 --confusion", "t1.log") == 0);
  REQUIRE(run(dir, 2, "test --model two.prototxt --weights out/one_iter_4.weights --iterations 3 --confusion", "t2.log") == 0);
  auto scores = [](const std::string& log) {
    std::string out;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);)
      if (line.find("mIoU") != std::string::npos || line.find("% of each") != std::string::npos ||
          (line.find("    ") == 0 && line.find("output") == std::string::npos))
        out += line + "\n";
    return out;
  };
  const std::string one = read_text(dir / "t1.log"), two = read_text(dir / "t2.log");
  INFO(one, "\n", two);
  CHECK(two.find("Tested 3 batches on each of 2 ranks") != std::string::npos);
  CHECK(scores(one).find("mIoU") != std::string::npos);
  CHECK(scores(two) == scores(one));
}

TEST_CASE("distributed: SceneData shards too: 2 ranks x 2 against 1 process x 4") {
  MPI_OR_SKIP();
  // Each rank renders its own samples of the global batch and mirrors them with the global
  // sample's generator (before, every rank rendered the first B scenes of each batch).
  TempDir dir("dist_scenes");
  one_against_two(dir, fusion(dir, 4, "frozen", "scenes"), fusion(dir, 2, "frozen", "scenes"), 3);
  check_same_losses(dir / "out/two_metrics.jsonl", dir / "out/one_metrics.jsonl", 3);
  CHECK(weight_gap(dir / "out/two_iter_3.weights", dir / "out/one_iter_3.weights") <= 1);
}

TEST_CASE("distributed: SyncBN over 2 ranks equals the 1-process batch; per-rank BN is each rank's own") {
  MPI_OR_SKIP();
  TempDir dir("dist_syncbn");
  // sync: the statistics (running ones included) and the whole training run equal the
  // 1-process run of the global batch.
  one_against_two(dir, fusion(dir, 4, ""), fusion(dir, 2, "sync"), 4);
  check_same_losses(dir / "out/two_metrics.jsonl", dir / "out/one_metrics.jsonl", 4);
  CHECK(weight_gap(dir / "out/two_iter_4.weights", dir / "out/one_iter_4.weights") <= 1);

  // Per rank (the default): after one step of a fresh net, the running statistics (which the
  // first update sets to the batch's) are rank 0's batch alone — exactly those of 1 process of
  // batch B, whose batch 0 is rank 0's shard — and differ from the global batch's.
  TempDir per("dist_perrank");
  write_text(per, "b2.prototxt", fusion(per, 2, ""));
  write_text(per, "b4.prototxt", fusion(per, 4, ""));
  write_text(per, "b2_solver.prototxt", data_parallel_solver("b2.prototxt", "b2", 1));
  write_text(per, "b4_solver.prototxt", data_parallel_solver("b4.prototxt", "b4", 1));
  write_text(per, "two_solver.prototxt", data_parallel_solver("b2.prototxt", "two", 1));
  REQUIRE(run(per, 1, "train --solver b2_solver.prototxt", "b2.log") == 0);
  REQUIRE(run(per, 1, "train --solver b4_solver.prototxt", "b4.log") == 0);
  REQUIRE_MESSAGE(run(per, 2, "train --solver two_solver.prototxt", "two.log") == 0, read_text(per / "two.log"));
  CHECK(weight_gap(per / "out/two_iter_1.weights", per / "out/b2_iter_1.weights", ".mean") == 0);
  CHECK(weight_gap(per / "out/two_iter_1.weights", per / "out/b2_iter_1.weights", ".variance") == 0);
  CHECK(weight_gap(per / "out/two_iter_1.weights", per / "out/b4_iter_1.weights", ".mean") > 1);
}

TEST_CASE("distributed: the test phase uses rank 0's BatchNorm statistics on every rank") {
  MPI_OR_SKIP();
  // Per-rank statistics differ between the ranks after training; the test at the end of the
  // run must use rank 0's (those the snapshot holds) on both, so that it scores what
  // `mmfuse test` of the snapshot under 2 ranks scores.
  TempDir dir("dist_teststats");
  write_text(dir, "net.prototxt", fusion(dir, 2, ""));
  write_text(dir, "s.prototxt", data_parallel_solver("net.prototxt", "s", 2, "test_iter: 2\ntest_interval: 2\ntest_initialization: false\n"));
  REQUIRE(run(dir, 2, "train --solver s.prototxt", "train.log") == 0);
  REQUIRE(run(dir, 2, "test --model net.prototxt --weights out/s_iter_2.weights --iterations 2", "test.log") == 0);
  auto test_loss = [](const std::string& log) {
    size_t at = log.find("output #0: loss = ");
    REQUIRE(at != std::string::npos);
    return std::stod(log.substr(at + 18));
  };
  const std::string trained = read_text(dir / "train.log"), tested = read_text(dir / "test.log");
  INFO(trained, "\n", tested);
  CHECK(test_loss(trained.substr(trained.find("Testing net #0"))) == test_loss(tested));
}

TEST_CASE("distributed: snapshot and resume under 2 ranks reproduce the uninterrupted run") {
  MPI_OR_SKIP();
  TempDir dir("dist_resume");
  write_text(dir, "net.prototxt", fusion(dir, 2, "sync"));
  write_text(dir, "full.prototxt", data_parallel_solver("net.prototxt", "full", 4));
  write_text(dir, "cut.prototxt", data_parallel_solver("net.prototxt", "cut", 4, "snapshot: 2\n"));
  REQUIRE(run(dir, 2, "train --solver full.prototxt", "full.log") == 0);
  REQUIRE(run(dir, 2, "train --solver cut.prototxt --max-iter 2", "cut.log") == 0);
  REQUIRE_MESSAGE(run(dir, 2, "train --solver cut.prototxt --snapshot out/cut_iter_2.solverstate", "resume.log") == 0,
                  read_text(dir / "resume.log"));
  CHECK(weight_gap(dir / "out/cut_iter_4.weights", dir / "out/full_iter_4.weights") == 0);
  auto full = metric_losses(dir / "out/full_metrics.jsonl"), cut = metric_losses(dir / "out/cut_metrics.jsonl");
  REQUIRE(cut.size() == 4);
  for (int it = 0; it < 4; ++it) CHECK(cut.at(it) == full.at(it));
}

TEST_CASE("distributed: buckets that start during backward give the weights of the post-backward reduction") {
  MPI_OR_SKIP();
  // Tiny buckets (one or two parameters each), SyncBN (whose backward reduces across the ranks
  // while gradient buckets are in flight) and iter_size 2 (only the last sub-batch's backward
  // starts buckets): the same losses and weights to the bit with and without overlap.
  TempDir dir("dist_overlap");
  write_text(dir, "net.prototxt", fusion(dir, 2, "sync"));
  const std::string common = "iter_size: 2\nallreduce_bucket_mb: 0.0005\n";
  write_text(dir, "on.prototxt", data_parallel_solver("net.prototxt", "on", 3, common));
  write_text(dir, "off.prototxt", data_parallel_solver("net.prototxt", "off", 3, common + "allreduce_overlap: false\n"));
  REQUIRE_MESSAGE(run(dir, 2, "train --solver on.prototxt", "on.log") == 0, read_text(dir / "on.log"));
  REQUIRE_MESSAGE(run(dir, 2, "train --solver off.prototxt", "off.log") == 0, read_text(dir / "off.log"));
  const std::string on = read_text(dir / "on.log"), off = read_text(dir / "off.log");
  INFO(on, "\n", off);
  // "Gradient all-reduce: N buckets of <= X MiB, M of them started during backward"
  const size_t at = on.find("Gradient all-reduce: ");
  REQUIRE(at != std::string::npos);
  const int buckets = std::stoi(on.substr(at + 21));
  const size_t during = on.find(" MiB, ", at);
  REQUIRE(during != std::string::npos);
  CHECK(buckets > 10);
  CHECK(std::stoi(on.substr(during + 6)) == buckets);  // every parameter is reached by backward
  CHECK(off.find("all after backward (allreduce_overlap: false)") != std::string::npos);
  CHECK(weight_gap(dir / "out/on_iter_3.weights", dir / "out/off_iter_3.weights") == 0);
  auto a = metric_losses(dir / "out/on_metrics.jsonl"), b = metric_losses(dir / "out/off_metrics.jsonl");
  REQUIRE(a.size() == 3);
  for (int it = 0; it < 3; ++it) CHECK(a.at(it) == b.at(it));
}

namespace {

// The pid of this test's mpirun running `marker`, or -1.
pid_t find_launcher(const std::string& marker) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_text(e.path().string() + "/cmdline");
    if (cmdline.rfind("mpirun", 0) == 0 && cmdline.find(marker) != std::string::npos)
      return static_cast<pid_t>(std::stoi(name));
  }
  return -1;
}

// Starts a long 2-rank run of `marker`.prototxt (`launcher`: as command()'s) and waits until it
// has trained a few iterations.
pid_t start_long_run(const TempDir& dir, const std::string& marker, const std::string& extra,
                     const std::string& launcher = "") {
  write_text(dir, "net.prototxt", fusion(dir, 2, "frozen"));
  write_text(dir, marker + ".prototxt", data_parallel_solver("net.prototxt", marker, 100000, extra));
  pid_t pid = spawn_shell(command(dir, 2, "train --solver " + marker + ".prototxt", marker + ".log", launcher));
  for (int i = 0; i < 600 && read_text(dir / (marker + ".log")).find("Iteration 3 ") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return pid;
}

// Starts a long 2-rank run `kill` (`launcher`: as command()'s), SIGKILLs rank 1 once it trains
// (after `before_kill(its pid)`, where given) and checks that the job ends with an error within
// 20 s; returns its log.
std::string kill_rank_1(const TempDir& dir, const std::string& launcher = "",
                        const std::function<void(pid_t)>& before_kill = nullptr) {
  pid_t run_pid = start_long_run(dir, "kill", "collective_timeout: 2\n", launcher);
  pid_t rank1 = find_process("mmfuse", "kill.prototxt", "OMPI_COMM_WORLD_RANK=1");
  REQUIRE(rank1 > 0);
  if (before_kill) before_kill(rank1);
  ::kill(rank1, SIGKILL);
  double took = 0;
  int code = wait_for(run_pid, 30, took);
  std::string log = read_text(dir / "kill.log");
  INFO(log);
  CHECK(code != 0);
  CHECK(code != -1);
  CHECK(took < 20);
  return log;
}

}  // namespace

TEST_CASE("distributed: a stalled or killed rank stops the others with an error naming it") {
  MPI_OR_SKIP();
  TempDir dir("dist_dead");
  {
    // Stalled (SIGSTOP): rank 0 names it after collective_timeout (2 s) and stops the job.
    pid_t run_pid = start_long_run(dir, "stall", "collective_timeout: 2\n");
    pid_t rank1 = find_process("mmfuse", "stall.prototxt", "OMPI_COMM_WORLD_RANK=1");
    REQUIRE(rank1 > 0);
    ::kill(rank1, SIGSTOP);
    double took = 0;
    int code = wait_for(run_pid, 30, took);
    ::kill(rank1, SIGKILL);
    std::string log = read_text(dir / "stall.log");
    INFO(log);
    CHECK(code != 0);
    CHECK(code != -1);
    CHECK(took < 20);
    CHECK(log.find("rank 1 did not answer") != std::string::npos);
    CHECK(log.find("collective_timeout") != std::string::npos);
  }
  {
    // Killed (SIGKILL): the launcher sees it die and ends the job, naming the rank.
    const std::string log = kill_rank_1(dir);
    INFO(log);
    CHECK(log.find("rank 1") != std::string::npos);
  }
}

TEST_CASE("distributed: a rank killed on one node of a hostfile stops the job over ssh with an error naming it") {
  HOSTFILE_OR_SKIP();
  // SIGKILL to rank 1 (on mmfuse-node2): its orted reports the death to mpirun, which ends rank 0
  // on the other node through that node's orted, and the sshd sessions close.
  TempDir dir("dist_hostfile_kill");
  LocalHosts hosts(dir);
  const std::string log = kill_rank_1(dir, hosts.launcher(), [](pid_t rank1) {
    CHECK(read_text("/proc/" + std::to_string(rank1) + "/environ").find("SSH_CONNECTION=") != std::string::npos);
  });
  INFO(log);
  // "mpirun noticed that process rank 1 with PID <pid> on node mmfuse-node2 exited on signal 9"
  const size_t noticed = log.find("process rank 1 with PID");
  REQUIRE(noticed != std::string::npos);
  CHECK(log.substr(noticed, log.find('\n', noticed) - noticed).find("on node mmfuse-node2") != std::string::npos);
  CHECK(find_process("mmfuse", "kill.prototxt", "OMPI_COMM_WORLD_RANK=0") == -1);
}

TEST_CASE("distributed: a stop signal to one rank or to mpirun stops every rank with one snapshot") {
  MPI_OR_SKIP();
  // SIGTERM to rank 1 alone (what srun sends every rank on Ctrl-C); SIGUSR1 to mpirun, which
  // OpenMPI forwards to every rank; Ctrl-C (SIGINT) and SIGTERM to mpirun, which OpenMPI turns
  // into SIGTERM to every rank (then SIGKILL after odls_base_sigkill_timeout) and answers with
  // a failing exit status of its own, however the ranks ended.
  for (const std::string marker : {"stop_rank", "stop_launcher", "int_launcher", "term_launcher"}) {
    TempDir dir("dist_" + marker);
    pid_t run_pid = start_long_run(dir, marker, "collective_timeout: 20\n");
    if (marker == "stop_rank") {
      pid_t rank1 = find_process("mmfuse", marker + ".prototxt", "OMPI_COMM_WORLD_RANK=1");
      REQUIRE(rank1 > 0);
      ::kill(rank1, SIGTERM);
    } else {
      pid_t launcher = find_launcher(marker + ".prototxt");
      REQUIRE(launcher > 0);
      ::kill(launcher, marker == "stop_launcher" ? SIGUSR1 : marker == "int_launcher" ? SIGINT : SIGTERM);
    }
    double took = 0;
    int code = wait_for(run_pid, 30, took);
    std::string log = read_text(dir / (marker + ".log"));
    INFO(marker, ": ", log);
    if (marker == "stop_rank" || marker == "stop_launcher") {
      CHECK(code == 0);
      CHECK(log.find("interrupted (SIGINT/SIGTERM/SIGUSR1) at iteration") != std::string::npos);
    } else {
      CHECK(code != -1);  // ended within the wait; mpirun stops relaying output: no message to see
    }
    int snapshots = 0;
    for (const auto& e : fs::directory_iterator(dir / "out"))
      if (e.path().extension() == ".solverstate") ++snapshots;
    CHECK(snapshots == 1);
  }
}
