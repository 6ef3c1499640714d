#!/usr/bin/env bash
# `moeq quantize` (the CLI) throughput on a generated GLM-4.7-Flash-shaped
# checkpoint (64 experts, H 2048, I 1536, bf16): wall time, GB/s of input,
# peak resident memory, for warm and cold page cache; then `moeq verify`.
#   bench/checkpoint_quantize.sh [BUILD_DIR] [WORK_DIR] [LAYERS] [-- extra quantize options]
# LAYERS=2 gives a ~2.6 GB checkpoint, 8 gives ~10 GB. WORK_DIR is removed at the end.
set -euo pipefail
build=$(realpath "${1:-build}")
work=${2:-/tmp/moeq-checkpoint-bench}
layers=${3:-2}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

"$build/bench/moeq_make_checkpoint" "$work/original" --layers "$layers" --experts 64 --hidden 2048 \
  --intermediate 1536 --vocabulary 32768 --shards 2

# Evicts a folder's files from the page cache (POSIX_FADV_DONTNEED), for cold reads.
evict() { python3 -c 'import os,sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$1"/*; }

echo "| run | options | wall s | CPU s | input GB/s | peak RSS GB |"
echo "|---|---|---|---|---|---|"
for cache in warm cold; do
  for options in "--format nf4" "--format nf4 --double-quant" "--format fp4" "$*"; do
    [ -z "$options" ] && continue
    rm -rf "$work/quantized"
    if [ "$cache" = cold ]; then evict "$work/original"; else cat "$work/original"/*.safetensors > /dev/null; fi
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" \
      "$build/moeq" quantize "$work/original" -o "$work/quantized" $options --quiet > "$work/summary.txt"
    read -r wall user system rss_kb < "$work/time.txt"
    input_bytes=$(du -cb "$work/original"/*.safetensors | tail -1 | cut -f1)
    awk -v c="$cache" -v o="$options" -v w="$wall" -v u="$user" -v s="$system" -v r="$rss_kb" -v b="$input_bytes" \
      'BEGIN { printf "| %s | %s | %.2f | %.2f | %.3f | %.2f |\n", c, o, w, u + s, b / w / 1e9, r / 1048576 }'
  done
done
echo
head -1 "$work/summary.txt"
/usr/bin/time -f "verify: %e s wall, %U s user" "$build/moeq" verify "$work/original" "$work/quantized" --quiet | tail -2
