#!/usr/bin/env bash
# Nsight Compute on one kernel of several commits, on one GPU machine in one call: every
# tree staged by `bench/gpu_compare.sh prepare REF...` (prebuilt, or built there side by
# side), then bench/gpu_gemm_check.sh's step "ncu" on each: the first launch of KERNEL (a
# regex over demangled names) in bench/kernel_profile.py's run of SHAPE at TOKENS. Run
# there from the repository root, carrying .gpu_multi:
#
#   KERNEL=lora_rows_project_kernel SHAPE=qwen3-30b-a3b TOKENS=8192 bash bench/gpu_ncu.sh
#
# Reports and text pages in $OUT/NN (or .gpu_multi/out/NN): ncu_details_ncu.txt, ...
set -uo pipefail
cd "$(dirname "$0")/.."
stage=$(pwd)/.gpu_multi
out=${OUT:-$stage/out}
mkdir -p "$out"
# shellcheck source=bench/gpu_trees.sh
source bench/gpu_trees.sh
status=0
build_trees || status=1
for tree in $(cd "$stage" && ls -d [0-9][0-9] | sort); do
  echo "== ncu $tree: $(cat "$stage/$tree/ref")"
  run_step "$tree" ncu NCU_KERNELS="ncu=${KERNEL:-lora_rows_project_kernel}" \
    PROFILE_ARGS="--shape ${SHAPE:-qwen3-30b-a3b} --tokens ${TOKENS:-8192}" || status=1
done
exit $status
