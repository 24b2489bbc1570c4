#!/usr/bin/env bash
# Data-parallel figures on one machine (docs/distributed.md): the main job
# (models/asymfusion/synthetic_solver.prototxt, global batch 8) trained for K iterations as
#   1 rank  x 2 threads (OMP_NUM_THREADS=2, batch 8) and
#   2 ranks x 1 thread  (mpirun -np 2, OMP_NUM_THREADS=1, batch 4 each), gradient buckets
#                        started during backward (allreduce_overlap: true, the default), and
#   the same 2 ranks with every bucket after backward (allreduce_overlap: false),
# printing each one's throughput (samples/s of the global batch, the mean of the solver's
# display records after the first) and time per step, then the all-reduce cost per step
# (bench_allreduce). BUCKET_MB (default 25, the solver's default) sets allreduce_bucket_mb of
# the 2-rank runs: smaller buckets start earlier in backward.
#   [BUCKET_MB=1] bench/distributed.sh [BUILD_DIR (default build)] [K (default 100)]
# Nothing is written into the repository (a temp folder, removed at the end).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-build}" && pwd)"
iters="${2:-100}"
mmfuse="$build/mmfuse"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
command -v mpirun > /dev/null || { echo "distributed.sh: no mpirun (apt-get install openmpi-bin)"; exit 1; }
mpirun=(mpirun --oversubscribe -np 2)
[ "$(id -u)" -eq 0 ] && mpirun+=(--allow-run-as-root)

sed 's/batch_size: 8 size: 64 seed: 1 mirror/batch_size: 4 size: 64 seed: 1 mirror/' \
  "$root/models/asymfusion/synthetic.prototxt" > "$work/net4.prototxt"
cp "$root/models/asymfusion/synthetic.prototxt" "$work/net8.prototxt"
bucket_mb="${BUCKET_MB:-25}"
for b in 4 8; do
  grep -v -E '^(net|display|snapshot|snapshot_prefix|test_interval|test_iter|max_iter):' \
    "$root/models/asymfusion/synthetic_solver.prototxt" > "$work/solver$b.prototxt"
  printf 'net: "net%s.prototxt"\ndisplay: 10\nsnapshot: 0\nsnapshot_after_train: false\nmax_iter: %s\nsnapshot_prefix: "%s/out%s/run"\n' \
    "$b" "$iters" "$work" "$b" >> "$work/solver$b.prototxt"
done
printf 'allreduce_bucket_mb: %s\n' "$bucket_mb" >> "$work/solver4.prototxt"
sed "s|/out4/run|/out4off/run|" "$work/solver4.prototxt" > "$work/solver4off.prototxt"
printf 'allreduce_overlap: false\n' >> "$work/solver4off.prototxt"
throughput() {  # mean samples_per_s of the display records after the first, and ms per step of 8
  grep -o '"samples_per_s":[0-9.e+]*' "$1" | tail -n +2 | cut -d: -f2 |
    awk '{ s += $1; n++ } END { if (n) printf "%.1f samples/s, %.1f ms per step", s / n, 8000 * n / s; else print "?" }'
}
cd "$work"
OMP_NUM_THREADS=2 "$mmfuse" train --solver solver8.prototxt > one.log 2>&1
echo "1 rank  x 2 threads, batch 8:                          $(throughput out8/run_metrics.jsonl)"
OMP_NUM_THREADS=1 "${mpirun[@]}" -x OMP_NUM_THREADS "$mmfuse" train --solver solver4.prototxt > two.log 2>&1
echo "2 ranks x 1 thread,  batch 4 each, overlap:            $(throughput out4/run_metrics.jsonl)"
grep -o 'Gradient all-reduce: .*' two.log || true
OMP_NUM_THREADS=1 "${mpirun[@]}" -x OMP_NUM_THREADS "$mmfuse" train --solver solver4off.prototxt > two_off.log 2>&1
echo "2 ranks x 1 thread,  batch 4 each, buckets after backward: $(throughput out4off/run_metrics.jsonl)"
OMP_NUM_THREADS=1 "${mpirun[@]}" -x OMP_NUM_THREADS "$build/bench_allreduce" --model "$root/models/asymfusion/synthetic.prototxt" --steps 50
