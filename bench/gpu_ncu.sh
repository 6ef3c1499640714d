#!/usr/bin/env bash
# Nsight Compute on one kernel of several commits, on one GPU machine in one call: build
# libmoeq of every tree staged by `bench/gpu_compare.sh prepare REF...` side by side
# (unless prepared with PREBUILD=1),
# then profile the first launch of KERNEL (a regex) in bench/kernel_profile.py's run of
# each tree and print the lines that say what bounds it. Run there from the repository
# root, carrying .gpu_multi:
#
#   KERNEL=lora_rows_project SHAPE=qwen3-30b-a3b TOKENS=8192 bash bench/gpu_ncu.sh
#
# Full reports in $OUT (or .gpu_multi/out): ncu-<tree>.txt. ncu holds the SM clock at
# its base (~1.33 GHz on an H200), so durations are longer than kernel_profile.py's.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=$(pwd)/.gpu_multi
out=${OUT:-$stage/out}
mkdir -p "$out"
export DEPS=$stage/deps
trees=$(cd "$stage" && ls -d [0-9][0-9] | sort)
count=$(echo "$trees" | wc -w)
jobs=$(( $(nproc) / count > 2 ? $(nproc) / count : 2 ))
# shellcheck source=bench/gpu_trees.sh
source bench/gpu_trees.sh
for tree in $trees; do
  use_prebuilt "$tree" > "$out/build-$tree.txt" 2>&1 && continue
  ( STAGE="$stage/$tree" BUILD="/tmp/moeq-$tree" OUT="$out/$tree" STEPS=build TARGETS=moeq JOBS=$jobs \
      bash bench/gpu_gemm_check.sh > "$out/build-$tree.txt" 2>&1 ) &
done
wait
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
for tree in $trees; do
  echo "== $tree: $(cat "$stage/$tree/ref") ($(tail -1 "$out/build-$tree.txt"))"
  MOEQ_LIBRARY=/tmp/moeq-$tree/libmoeq.so LD_LIBRARY_PATH=$DEPS/lib timeout "${NCU_TIMEOUT:-150}" \
    "$ncu" -k "regex:${KERNEL:-lora_rows_project}" --launch-count 1 --section SpeedOfLight \
    --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats \
    python3 "$stage/$tree/tree/bench/kernel_profile.py" --shape "${SHAPE:-qwen3-30b-a3b}" \
    --tokens "${TOKENS:-8192}" --reps 1 > "$out/ncu-$tree.txt" 2>&1
  echo "ncu: exit $?"
  grep -E "Duration|DRAM Throughput|L2 Cache Throughput|Compute \(SM\) Throughput|Memory Throughput +Tbyte|L1/TEX Hit|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued|Registers Per|Grid Size|Block Size|Waves" \
    "$out/ncu-$tree.txt"
done
