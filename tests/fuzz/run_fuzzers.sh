#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz: clang, ASan + UBSan) in their own build
# folder and runs each one from its committed seed corpus for a bounded time, both
# at once; any crash, leak, timeout or sanitizer report fails the run.
#   tests/fuzz/run_fuzzers.sh [SECONDS_PER_FUZZER]   (default 45)
# Environment: MOEQ_FUZZ_BUILD_DIR (default build-fuzz), JOBS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir=${MOEQ_FUZZ_BUILD_DIR:-build-fuzz}
seconds=${1:-45}

echo "== configuring and building the fuzzers ($build_dir)"
cmake -S tests/fuzz -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}"

# New inputs go to a scratch corpus, so the committed one stays as it is.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fuzzers=(fuzz_c_api fuzz_safetensors)
pids=()
for fuzzer in "${fuzzers[@]}"; do
  mkdir -p "$scratch/$fuzzer"
  echo "== fuzzing $fuzzer for ${seconds}s"
  "$build_dir/$fuzzer" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$build_dir/$fuzzer-" "$scratch/$fuzzer" "tests/fuzz/corpus/$fuzzer" \
    >"$build_dir/$fuzzer.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!fuzzers[@]}"; do
  fuzzer=${fuzzers[$i]}
  if wait "${pids[$i]}"; then
    echo "== $fuzzer: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$build_dir/$fuzzer.log" | tail -1)"
  else
    failed=1
    echo "== $fuzzer FAILED (reproducer: $build_dir/$fuzzer-*); the end of its log:"
    grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$build_dir/$fuzzer.log" | tail -60
  fi
done
exit "$failed"
