#!/usr/bin/env bash
# Several commits on one GPU machine in one call, so their benchmarks share a machine
# and a run: build every staged tree side by side (the first with its CUDA suites),
# run the first's checks, then bench each tree in turn (the first again at the end,
# to show the run's drift). Uses bench/gpu_gemm_check.sh for every step.
#
#   bench/gpu_compare.sh prepare REF...   here: a snapshot of each REF (the first is the
#                                         one checked) and one shared copy of the build
#                                         dependencies, in .gpu_multi/
#   bench/gpu_compare.sh                  there, from the repository root, carrying
#                                         .gpu_multi (and .whl for bitsandbytes)
#
# PREBUILD=1 with prepare also builds each tree here (no PTX; the first tree with
# its CUDA suites unless CHECKS=none), without its object files, so the device call
# spends no time building (a third of the twelfth pass' device time went to builds):
# ~2.5-10 min per tree on 2 cores, ~3 MB each to carry. There, a prebuilt tree that does
# not load (another C++ runtime) is built again as usual.
#
# Environment there: CHECKS (steps on the first tree, default "test"; none; "sanitize"
# no longer fits beside the builds and benches in one 600 s call: run it alone with
# bench/gpu_gemm_check.sh, STEPS="build sanitize"),
# BENCH_ARGS (default "--no-bnb --tokens 8192 64"), SANITIZER_TOOLS; logs in $OUT
# (or .gpu_multi/out): <name>.txt per tree and step.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=$(pwd)/.gpu_multi

# shellcheck source=bench/gpu_trees.sh
source bench/gpu_trees.sh

if [ "${1:-}" = prepare ]; then
  set -e
  shift
  [ $# -gt 0 ] || { echo "usage: bench/gpu_compare.sh prepare REF..." >&2; exit 2; }
  rm -rf "$stage" && mkdir -p "$stage"
  bench/gpu_stage_deps.sh "$stage/deps"
  index=0
  for ref in "$@"; do
    name=$(printf '%02d' "$index")
    REF=$ref STAGE=$stage/$name DEPS=$stage/deps bench/gpu_gemm_check.sh prepare
    echo "$ref" > "$stage/$name/ref"
    [ "${PREBUILD:-0}" = 1 ] && prebuild "$stage/$name" "$([ "$index" = 0 ] && [ "${CHECKS:-}" != none ] && echo suites)"
    index=$((index + 1))
  done
  echo "staged $# trees in $stage ($(du -sh "$stage" | cut -f1))"
  # A device call carries at most 64 MiB: ~13 MiB per prebuilt tree (its source and
  # archive) plus ~6 MiB of dependencies, so four prebuilt trees fit, five do not.
  [ "$(du -sm "$stage" | cut -f1)" -le 64 ] ||
    echo "warning: $stage is over the 64 MiB a device call carries: stage fewer trees" >&2
  exit 0
fi

out=${OUT:-$stage/out}
mkdir -p "$out"
rm -f "$out"/*-bench.txt "$out"/*-bench-again.txt  # a warm machine's earlier call
trees=$(cd "$stage" && ls -d [0-9][0-9] | sort)
first=$(echo "$trees" | head -1)
status=0
# The first tree also builds the CUDA suites, unless no checks will run them.
build_trees "$([ "${CHECKS:-}" != none ] && echo suites)" || status=1
for tree in $trees $first; do
  echo "== bench $tree: $(cat "$stage/$tree/ref")"
  # The first tree's second bench goes to its own log, so both of its runs stay.
  log=$out/$tree-bench.txt
  [ -e "$log" ] && log=$out/$tree-bench-again.txt
  run_step "$tree" bench BENCH_ARGS="${BENCH_ARGS:---no-bnb --tokens 8192 64}" > "$log" 2>&1 || status=1
  # Each layer line once (bench/expert_gemm.py prints it per shape and again at the end).
  grep -E "^[a-z0-9.-]+ +[0-9]+ (fwd|fwd\+bwd) " "$log" | awk '!seen[$0]++'
done
checks=${CHECKS:-test}
if [ "$checks" != none ]; then
  echo "== checks on $first: $checks"
  run_step "$first" "$checks" > "$out/$first-checks.txt" 2>&1 || status=1
  grep -E "^## |test cases:|assertions:|ERROR lines|SUMMARY|: exit" "$out/$first-checks.txt"
fi
exit $status
