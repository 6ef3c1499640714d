#!/usr/bin/env bash
# The CUDA expert GEMM on a GPU machine, in one call: configure and build moeq with
# CUDA, run the CUDA expert GEMM, concurrency and 2^20-row suites, run all but the
# 2^20-row one again under compute-sanitizer (memcheck, racecheck, initcheck,
# synccheck) with few random cases and a short concurrency run, then bench/expert_gemm.py;
# the step "profile" (not run by default) prints each kernel's time (bench/kernel_profile.py).
#
#   bench/gpu_gemm_check.sh prepare   here: a snapshot of HEAD (others keep editing the
#                                      tree) and the build dependencies the GPU image
#                                      lacks (bench/gpu_stage_deps.sh), in .gpu_gemm/
#   bench/gpu_gemm_check.sh            there, from the repository root, carrying .gpu_gemm
#                                      and .whl (the bitsandbytes wheel)
#
# Environment: STAGE (the staging folder, default .gpu_gemm; prepare and run alike),
# REF (what prepare snapshots, default HEAD),
# DEPS (the staged dependencies, default $STAGE/deps: several staged trees can share
# one), BUILD (the build folder, default /tmp/moeq-gemm-build), OUT (logs; default
# $STAGE/out), TARGETS (what the build step builds; default the library and the
# CUDA suites, "moeq" alone serves a bench-only run), CMAKE_ARGS (more configure
# options, e.g. -DMOEQ_CUDA_GENCODE=...), JOBS (16), STEPS (default
# "build test sanitize bench"), SANITIZER_TOOLS (default "memcheck racecheck
# initcheck synccheck"), SANITIZER_CASES (random cases per suite, 3),
# SANITIZER_CONCURRENCY_SECONDS (how long the concurrency suite's threads run under
# a sanitizer, 3; racecheck 1), SANITIZER_TIMEOUT (per run, 240 s; racecheck +180),
# BENCH_ARGS (passed to bench/expert_gemm.py), PROFILE_ARGS (to
# bench/kernel_profile.py), NCU_KERNELS (the step "ncu": see step_ncu). The suites
# run side by side in each step. On one H200 "build test sanitize" no longer fits one
# 600 s call (2026-11-30: cut off in the sanitizers at 590 s): run "build test" and
# "build sanitize" as two calls.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${STAGE:-$(pwd)/.gpu_gemm}

if [ "${1:-}" = prepare ]; then
  set -e
  grep -qxF '/.gpu_*/' "$(git rev-parse --git-common-dir)/info/exclude" 2>/dev/null ||
    echo '/.gpu_*/' >> "$(git rev-parse --git-common-dir)/info/exclude"
  rm -rf "$stage" && mkdir -p "$stage/tree"
  git archive "${REF:-HEAD}" | tar -x -C "$stage/tree"
  git rev-parse "${REF:-HEAD}" > "$stage/commit"
  [ -n "${DEPS:-}" ] || bench/gpu_stage_deps.sh "$stage/deps"
  echo "prepared $(cat "$stage/commit") in $stage ($(du -sh "$stage" | cut -f1))"
  exit 0
fi

root=$stage/tree
out=${OUT:-$stage/out}
mkdir -p "$out"
jobs=${JOBS:-16}
steps=${STEPS:-build test sanitize bench}
build=${BUILD:-/tmp/moeq-gemm-build}
deps=${DEPS:-$stage/deps}
status=0
export LD_LIBRARY_PATH="$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== commit $(cat "$stage/commit"); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)" |
  tee "$out/build.log"

suites=(test_cuda_expert_gemm test_cuda_expert_gemm_backward test_cuda_concurrency test_cuda_swiglu)
large_suite=test_cuda_large_gemm
# It reads cudaMemGetInfo, which the other suites' allocations (and the sanitizer's)
# perturb: it runs alone in the test step and not under a sanitizer.
memory_test='*allocates no device memory*'

step_build() {
  echo "== configure + build ($jobs jobs)"
  {
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEQ_CUDA=ON \
      -DCMAKE_PREFIX_PATH="$deps" -DMOEQ_DLPACK_INCLUDE_DIR="$deps/include" \
      -DMOEQ_CBLAS_INCLUDE_DIR="$deps/include" -DMOEQ_CBLAS_LIBRARY="$deps/lib/libblas.so.3" \
      -DMOEQ_BUILD_PYTHON=OFF -DMOEQ_BUILD_JAVA=OFF -DMOEQ_BUILD_BENCH=OFF ${CMAKE_ARGS:-} &&
    cmake --build "$build" -j "$jobs" --target ${TARGETS:-moeq ${suites[*]} $large_suite}
  } >>"$out/build.log" 2>&1 || { echo "build failed"; tail -40 "$out/build.log"; exit 1; }
  tail -2 "$out/build.log"
}

step_test() {
  echo "== CUDA suites, $large_suite with MOEQ_LARGE_TESTS=1"
  for suite in "${suites[@]}"; do
    ( time timeout 300 "$build/tests/$suite" -tce="$memory_test" ) >"$out/$suite.log" 2>&1 &
  done
  : >"$out/tests.log"
  ( time MOEQ_LARGE_TESTS=1 timeout 300 "$build/tests/$large_suite" ) >"$out/$large_suite.log" 2>&1 &
  for job in $(jobs -p); do wait "$job" || status=1; done
  ( time timeout 60 "$build/tests/test_cuda_expert_gemm" -tc="$memory_test" ) \
    >"$out/memory_test.log" 2>&1 || status=1
  for log in "${suites[@]}" "$large_suite" memory_test; do
    echo "## $log" >>"$out/tests.log"
    cat "$out/$log.log" >>"$out/tests.log" && rm "$out/$log.log"
  done
  grep -E "^## |outputs,|cases,|concurrent calls|ms, backward|skipped|test cases:|assertions:|ERROR|real" \
    "$out/tests.log" | head -80
  echo "ERROR lines: $(grep -c "ERROR" "$out/tests.log")"
}

step_sanitize() {
  echo "== compute-sanitizer (${SANITIZER_CASES:-3} random cases per suite," \
    "${SANITIZER_CONCURRENCY_SECONDS:-3} s of concurrent calls), every tool and suite side by side"
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  tools=${SANITIZER_TOOLS:-memcheck racecheck initcheck synccheck}
  # 3 s of concurrent calls (1 s once gave each thread a single call under racecheck).
  # racecheck looks for shared-memory hazards inside a block, not between streams, so a
  # single call per thread serves it: it gets 1 s and more time, as at d47befc its
  # concurrency run passed 240 s (it tracks every shared access of the new kernels).
  local seconds limit
  : >"$out/sanitize-summary.txt"
  for tool in $tools; do
    seconds=${SANITIZER_CONCURRENCY_SECONDS:-3} limit=${SANITIZER_TIMEOUT:-240}
    [ "$tool" = racecheck ] && seconds=1 limit=$((limit + 180))
    for suite in "${suites[@]}"; do
      ( MOEQ_GEMM_TEST_CASES=${SANITIZER_CASES:-3} \
        MOEQ_CONCURRENCY_SECONDS=$seconds timeout "$limit" "$sanitizer" \
          --tool "$tool" --error-exitcode 3 "$build/tests/$suite" -tce="$memory_test" \
          >"$out/$tool-$suite.log" 2>&1
        echo "$tool $suite: exit $?" >>"$out/$tool-$suite.log"
        # Each run's summary as it ends, in one file: a call cut off by its time limit
        # still brings back what finished (the device returns a few files only).
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test cases:|: exit" "$out/$tool-$suite.log" \
          >>"$out/sanitize-summary.txt" ) &
    done
  done
  wait
  : >"$out/sanitize.log"
  for tool in $tools; do
    for suite in "${suites[@]}"; do
      cat "$out/$tool-$suite.log" >>"$out/sanitize.log" && rm "$out/$tool-$suite.log"
    done
  done
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|concurrent calls|test cases:|: exit" "$out/sanitize.log"
  if grep -q ": exit [^0]" "$out/sanitize.log"; then status=1; fi
}

step_profile() {
  echo "== bench/kernel_profile.py (each kernel's time per call)"
  PYTHONUNBUFFERED=1 MOEQ_LIBRARY="$build/libmoeq.so" PYTHONPATH="$root/bench" \
    python3 "$root/bench/kernel_profile.py" ${PROFILE_ARGS:-} 2>&1 | tee "$out/profile.log" || status=1
}

# ncu over the first launch of each named kernel (default: the Hopper GEMM's forward
# and backward, Qwen3 gate_up, 8192 tokens): the full section set with per-instruction
# stall samples, as reports and as text (details page, SASS with samples). NCU_KERNELS:
# "name=regex" pairs separated by ";", the regex over demangled names, e.g.
# NCU_KERNELS="project=lora_rows_project_kernel".
step_ncu() {
  local ncu entry name regex
  local default="wgmma_0=wgmma_gemm_kernel<__nv_bfloat16, .bool.0>;wgmma_1=wgmma_gemm_kernel<__nv_bfloat16, .bool.1>"
  ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  IFS=';' read -r -a entries <<<"${NCU_KERNELS:-$default}"
  for entry in "${entries[@]}"; do
    name=${entry%%=*} regex=${entry#*=}
    echo "== ncu $name ($regex)"
    MOEQ_LIBRARY="$build/libmoeq.so" PYTHONPATH="$root/bench" timeout 240 "$ncu" --clock-control none \
      --kernel-name-base demangled --kernel-name "regex:$regex" \
      --launch-count 1 --set full --import-source no -f -o "$out/$name" \
      python3 "$root/bench/kernel_profile.py" --plain ${PROFILE_ARGS:-} >"$out/ncu_$name.log" 2>&1 || status=1
    "$ncu" -i "$out/$name.ncu-rep" --page details >"$out/ncu_details_$name.txt" 2>&1
    "$ncu" -i "$out/$name.ncu-rep" --page source --print-source sass --csv \
      >"$out/ncu_sass_$name.csv" 2>&1
    tail -3 "$out/ncu_$name.log"
    grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|Issue Slots Busy|No Eligible|Eligible Warps|Achieved Occupancy|L2 Hit|Registers Per" \
      "$out/ncu_details_$name.txt" | head -24
  done
}

step_bench() {
  echo "== bench/expert_gemm.py"
  if ls .whl/bitsandbytes-*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
      .whl/bitsandbytes-*.whl >>"$out/bench.log" 2>&1 && export PYTHONPATH=/tmp/site
  fi
  PYTHONUNBUFFERED=1 MOEQ_LIBRARY="$build/libmoeq.so" python3 "$root/bench/expert_gemm.py" \
    --json "$out/bench.json" ${BENCH_ARGS:-} 2>&1 | tee -a "$out/bench.log" || status=1
}

for step in $steps; do
  started=$SECONDS
  "step_$step"
  echo "   ($step: $((SECONDS - started)) s)"
done
exit $status
