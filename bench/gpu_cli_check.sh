#!/usr/bin/env bash
# GPU machine check of the moeq command in one device call: build it with CUDA, generate
# a ~10 GB GLM-4.7-Flash-shaped checkpoint, time `moeq quantize` with --device cpu (all
# cores) and --device cuda, compare their outputs byte for byte, verify, and have
# bitsandbytes read the result (bench/bnb_reads_checkpoint.py). Logs land in $OUT.
#
#   bench/gpu_cli_check.sh prepare   on the build machine: a snapshot of HEAD in .gpu_cli/
#                                    plus the build dependencies that
#                                    `bench/gpu_quant_check.sh prepare` gathered in .gpu_quant/
#   bench/gpu_cli_check.sh           on the GPU machine (carry .gpu_cli and .whl);
#                                    LAYERS=4 halves the checkpoint (default 8: ~10 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stage=$root/.gpu_cli

prepare() {
  grep -qx '/.gpu_cli/' .git/info/exclude 2>/dev/null || echo '/.gpu_cli/' >> .git/info/exclude
  [ -d .gpu_quant/deps ] || { echo "run bench/gpu_quant_check.sh prepare first"; exit 1; }
  rm -rf "$stage" && mkdir -p "$stage/tree"
  git archive HEAD | tar -x -C "$stage/tree"
  git rev-parse HEAD > "$stage/commit"
  cp -r .gpu_quant/deps "$stage/deps"
  echo "prepared $(cat "$stage/commit") in $stage ($(du -sh "$stage" | cut -f1))"
}

# Evicts a folder's files from the page cache, for a cold read.
evict() {
  python3 -c 'import os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$1"/*
}

gpu_check() {
  local out=${OUT:-$stage/out} deps=$stage/deps build=/tmp/moeq-cli-build work=/tmp/moeq-cli-bench
  mkdir -p "$out" "$work"
  export LD_LIBRARY_PATH=$deps/blas/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "== commit $(cat "$stage/commit"); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader); $(nproc) cores"
  (cmake -S "$stage/tree" -B $build -G Ninja -DMOEQ_CUDA=ON -DMOEQ_BUILD_TESTS=OFF -DMOEQ_BUILD_PYTHON=OFF \
      -DMOEQ_BUILD_JAVA=OFF -DMOEQ_BUILD_RUST=OFF -DCMAKE_PREFIX_PATH="$deps" \
      -DMOEQ_DLPACK_INCLUDE_DIR="$deps/include" -DMOEQ_CBLAS_INCLUDE_DIR="$deps/blas/include" \
      -DMOEQ_CBLAS_LIBRARY="$deps/blas/lib/libblas.so.3" &&
    ninja -C $build -j"$(nproc)" moeq_cli moeq_make_checkpoint) > "$out/build.log" 2>&1 ||
    { tail -40 "$out/build.log"; exit 1; }
  "$build/bench/moeq_make_checkpoint" "$work/original" --layers "${LAYERS:-8}" --experts 64 --hidden 2048 \
    --intermediate 1536 --vocabulary 32768 --shards 4
  local input_bytes
  input_bytes=$(du -cb "$work/original"/*.safetensors | tail -1 | cut -f1)

  echo "| device | options | cache | wall s | input GB/s |"
  echo "|---|---|---|---|---|"
  local device options cache name start
  while read -r device cache name options; do
    rm -rf "${work:?}/$name"
    if [ "$cache" = cold ]; then evict "$work/original"; fi
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$build/moeq" quantize "$work/original" -o "$work/$name" --device "$device" $options --quiet \
      > "$out/$name.txt" 2>&1 || { cat "$out/$name.txt"; exit 1; }
    awk -v start="$start" -v end="$(date +%s.%N)" -v bytes="$input_bytes" -v d="$device" -v o="$options" \
      -v c="$cache" 'BEGIN { printf "| %s | %s | %s | %.2f | %.2f |\n", d, o, c, end - start, bytes / (end - start) / 1e9 }' 
  done <<'RUNS'
cpu warm cpu_nf4_dq --format nf4 --double-quant
cuda warm cuda_nf4_dq --format nf4 --double-quant
cuda cold cuda_nf4_dq_cold --format nf4 --double-quant
cpu warm cpu_fp4 --format fp4
cuda warm cuda_fp4 --format fp4
RUNS
  local pair
  for pair in "cpu_nf4_dq cuda_nf4_dq" "cpu_fp4 cuda_fp4"; do
    set -- $pair
    if diff -rq "$work/$1" "$work/$2" > /dev/null; then echo "$1 and $2: byte-identical"
    else echo "$1 and $2: DIFFER"; cmp "$work/$1/model-00001-of-00004.safetensors" "$work/$2/model-00001-of-00004.safetensors" | head -3; fi
  done
  time "$build/moeq" verify "$work/original" "$work/cuda_nf4_dq" --quiet | tee "$out/verify.log" | tail -2
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  for name in cuda_nf4_dq cpu_fp4; do
    PYTHONPATH=/tmp/site python3 bench/bnb_reads_checkpoint.py "$work/original" "$work/$name" > "$out/bnb_$name.log" 2>&1 &&
      tail -1 "$out/bnb_$name.log" || { echo "bitsandbytes check of $name failed:"; tail -20 "$out/bnb_$name.log"; }
  done
}

case "${1:-}" in
  prepare) prepare ;;
  *) gpu_check ;;
esac
