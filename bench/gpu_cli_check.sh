#!/usr/bin/env bash
# GPU machine check of the moeq command in one short device call, with nothing to build
# there: generate a ~10 GB GLM-4.7-Flash-shaped checkpoint (shards side by side), time
# `moeq quantize` with --device cpu (all cores) and --device cuda for NF4 double-quant and
# FP4, compare the CPU and CUDA outputs byte for byte, run `moeq verify`, and have
# transformers read the output's quantization_config. With `prepare --before REV` the
# command of commit REV is timed too, against the same library and checkpoint. Logs and
# the table land in $OUT.
#
#   bench/gpu_cli_check.sh prepare [--before REV]
#        on the build machine: builds HEAD (and REV) with CUDA from git snapshots in
#        build-gpucli/<commit>/ (JOBS, default 2; kept for the next prepare), and puts the
#        programs and the run-time libraries they need into .gpu_cli/ (~10 MB)
#   bench/gpu_cli_check.sh
#        on the GPU machine (carry .gpu_cli); LAYERS=4 halves the checkpoint (default 8)
#
# The input lives on the local disk (in the page cache once generated: "warm"; evicted
# first: "cold"); outputs go to /dev/shm (tmpfs) so that the rows measure the command, not
# the disk, except the one row that writes to the local disk.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stage=$root/.gpu_cli
blas=/usr/lib/x86_64-linux-gnu/blas/libblas.so.3  # the reference BLAS: it needs only libc

# Builds commit $1 with CUDA (targets $2...) unless that was done before; prints the build folder.
build_commit() {
  local folder=$root/build-gpucli/$1 dlpack
  dlpack=$(python3 -c 'import tvm_ffi.libinfo as l; print(l.find_dlpack_include_path())')
  if [ ! -f "$folder/built" ]; then
    rm -rf "$folder" && mkdir -p "$folder/src"
    git archive "$1" | tar -x -C "$folder/src"
    cmake -S "$folder/src" -B "$folder/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEQ_CUDA=ON \
      -DMOEQ_BUILD_TESTS=OFF -DMOEQ_BUILD_PYTHON=OFF -DMOEQ_BUILD_JAVA=OFF -DMOEQ_BUILD_RUST=OFF \
      -DMOEQ_DLPACK_INCLUDE_DIR="$dlpack" -DMOEQ_CBLAS_INCLUDE_DIR=/usr/include/x86_64-linux-gnu/openblas-openmp \
      -DMOEQ_CBLAS_LIBRARY="$blas" > "$folder/configure.log" 2>&1
    cmake --build "$folder/build" -j "${JOBS:-2}" --target "${@:2}" > "$folder/build.log" 2>&1 ||
      { tail -30 "$folder/build.log" >&2; exit 1; }
    touch "$folder/built"
  fi
  echo "$folder/build"
}

prepare() {
  grep -qx '/.gpu_cli/' .git/info/exclude 2>/dev/null || echo '/.gpu_cli/' >> .git/info/exclude
  local head before="" build
  head=$(git rev-parse --short HEAD)
  if [ "${1:-}" = --before ]; then before=$(git rev-parse --short "$2"); fi
  build=$(build_commit "$head" moeq_cli moeq_make_checkpoint)
  rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib/fallback"
  cp "$build/moeq" "$build/bench/moeq_make_checkpoint" "$stage/bin/"
  cp -L "$build/libmoeq.so.0" "$blas" "$(ldd "$build/moeq" | awk '/libcudart/ { print $3 }')" "$stage/lib/"
  cp -L "$(gcc -print-file-name=libgomp.so.1)" "$stage/lib/fallback/"
  echo "$head" > "$stage/commit"
  if [ -n "$before" ]; then
    # The command of REV only: it runs on HEAD's library, so the rows differ by the command alone.
    cp "$(build_commit "$before" moeq_cli)/moeq" "$stage/bin/moeq-before"
    echo "$before" > "$stage/before"
  fi
  echo "prepared $head${before:+ and $before} in $stage ($(du -sh "$stage" | cut -f1))"
}

# Evicts a folder's files from the page cache, for a cold read.
evict() {
  python3 -c 'import os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$1"/*
}

gpu_check() {
  local out=${OUT:-$stage/out} bin=$stage/bin disk=/tmp/moeq-cli-bench memory=/dev/shm/moeq-cli-bench
  mkdir -p "$out" "$disk"
  export LD_LIBRARY_PATH=$stage/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  ldconfig -p | grep -q 'libgomp.so.1 ' || export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$stage/lib/fallback
  if ! mkdir -p "$memory" 2>/dev/null || [ "$(df --output=avail -B1G "$memory" | tail -1)" -lt 40 ]; then
    memory=$disk/outputs && mkdir -p "$memory"
  fi
  echo "== $(date -u '+%F %H:%M UTC'), commit $(cat "$stage/commit") (before: $(cat "$stage/before" 2>/dev/null || echo none))"
  echo "== $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader); $(nproc) cores; $(free -g | awk '/Mem/ { print $2 }') GiB"
  echo "== input on $(df --output=fstype "$disk" | tail -1) ($disk), outputs on $(df --output=fstype "$memory" | tail -1) ($memory)"
  "$bin/moeq" --version

  local start
  start=$(date +%s.%N)
  "$bin/moeq_make_checkpoint" "$disk/original" --layers "${LAYERS:-8}" --experts 64 --hidden 2048 \
    --intermediate 1536 --vocabulary 32768 --shards 4
  echo "generated (and flushed to disk) in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
  # What transformers would find beside the shards: the output's gets a quantization_config.
  echo '{"architectures": ["Glm4MoeLiteForCausalLM"], "model_type": "glm4_moe_lite", "torch_dtype": "bfloat16"}' \
    > "$disk/original/config.json"
  local input_bytes
  input_bytes=$(du -cb "$disk/original"/*.safetensors | tail -1 | cut -f1)

  # The ceilings on this machine: 4 readers of the page cache, one writer into tmpfs.
  start=$(date +%s.%N)
  for shard in "$disk/original"/*.safetensors; do cat "$shard" > /dev/null & done
  wait
  awk -v s="$start" -v e="$(date +%s.%N)" -v b="$input_bytes" \
    'BEGIN { printf "page cache read, 4 threads (cat): %.2f GB/s\n", b / (e - s) / 1e9 }'
  dd if=/dev/zero of="$memory/dd" bs=64M count=48 2>&1 | tail -1 | sed 's/^/tmpfs write, 1 thread (dd): /'
  rm -f "$memory/dd"

  echo "| run | device | options | cache | output on | wall s | in-command s | input GB/s (wall) | peak RSS GB |" | tee "$out/table.md"
  echo "|---|---|---|---|---|---|---|---|---|" | tee -a "$out/table.md"
  local name program device cache place options target wall rss
  while read -r name program device cache place options; do
    [ -x "$bin/$program" ] || continue
    target=$memory/$name
    [ "$place" = disk ] && target=$disk/$name
    rm -rf "$target"
    if [ "$cache" = cold ]; then evict "$disk/original"; fi
    # Wall time of the whole process (start, CUDA context, reading, writing, fsync) and its peak RSS.
    # shellcheck disable=SC2086
    python3 -c 'import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[2:], stdout=open(sys.argv[1], "w"), stderr=subprocess.STDOUT)
wall = time.perf_counter() - start
print("%.2f %.2f" % (wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6))
sys.exit(code)' "$disk/$name.txt" "$bin/$program" quantize "$disk/original" -o "$target" --device "$device" \
      $options --quiet < /dev/null > "$disk/$name.time" || { cat "$disk/$name.txt"; exit 1; }
    { echo "== $name"; cat "$disk/$name.txt"; } >> "$out/runs.log"
    read -r wall rss < "$disk/$name.time"
    awk -v n="$name" -v p="$program" -v d="$device" -v o="$options" -v c="$cache" -v w="$wall" -v b="$input_bytes" \
      -v pl="$place" -v inside="$(sed -n 's/.* read in \([0-9.]*\) s.*/\1/p' "$disk/$name.txt")" -v r="$rss" \
      'BEGIN { printf "| %s | %s%s | %s | %s | %s | %s | %s | %.2f | %s |\n", n, d, (p == "moeq" ? "" : " (before)"), o, c, pl, w, inside, b / w / 1e9, r }' \
      | tee -a "$out/table.md"
    case $name in before_*|*_disk|*_cold) rm -rf "$target" ;; esac
  done <<'RUNS'
cuda_nf4_dq moeq cuda warm tmpfs --format nf4 --double-quant
cpu_nf4_dq moeq cpu warm tmpfs --format nf4 --double-quant
cuda_fp4 moeq cuda warm tmpfs --format fp4
cpu_fp4 moeq cpu warm tmpfs --format fp4
before_cuda_nf4_dq moeq-before cuda warm tmpfs --format nf4 --double-quant
before_cuda_fp4 moeq-before cuda warm tmpfs --format fp4
cuda_nf4_dq_disk moeq cuda warm disk --format nf4 --double-quant
cuda_nf4_dq_cold moeq cuda cold tmpfs --format nf4 --double-quant
RUNS

  local cpu_run
  for cpu_run in cpu_nf4_dq cpu_fp4; do
    if diff -rq "$memory/$cpu_run" "$memory/cuda_${cpu_run#cpu_}" > /dev/null; then
      echo "$cpu_run and cuda_${cpu_run#cpu_}: byte-identical"
    else
      echo "$cpu_run and cuda_${cpu_run#cpu_}: DIFFER"
      diff -rq "$memory/$cpu_run" "$memory/cuda_${cpu_run#cpu_}" | head -5
    fi
  done
  rm -rf "$memory/cpu_nf4_dq" "$memory/cpu_fp4" "$memory/cuda_fp4"
  "$bin/moeq" verify "$disk/original" "$memory/cuda_nf4_dq" --quiet > "$out/verify.log" 2>&1 || true
  tail -2 "$out/verify.log"
  timeout 60 python3 - "$memory/cuda_nf4_dq/config.json" <<'PY' 2>&1 | tail -3 || true
import json, sys
import transformers
from transformers import BitsAndBytesConfig
stored = json.load(open(sys.argv[1]))["quantization_config"]
config = BitsAndBytesConfig.from_dict(stored)
print(f"transformers {transformers.__version__} BitsAndBytesConfig.from_dict: load_in_4bit={config.load_in_4bit} "
      f"quant_type={config.bnb_4bit_quant_type} double_quant={config.bnb_4bit_use_double_quant} "
      f"compute_dtype={config.bnb_4bit_compute_dtype} skip_modules={len(config.llm_int8_skip_modules)} "
      f"(moeq_quantized_parameters: {len(stored['moeq_quantized_parameters'])})")
PY
  rm -rf "$memory"
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  *) gpu_check ;;
esac
