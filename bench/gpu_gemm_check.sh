#!/usr/bin/env bash
# The CUDA expert GEMM on a GPU machine, in one call: configure and build moeq with
# CUDA, run the CUDA expert GEMM tests, run them again under compute-sanitizer
# (memcheck, racecheck, initcheck) with few random cases, then bench/expert_gemm.py.
#
#   bench/gpu_gemm_check.sh prepare   here: a snapshot of HEAD (others keep editing the
#                                      tree) and the build dependencies the GPU image
#                                      lacks (doctest, JSON, CLI11, DLPack, a CBLAS), in .gpu_gemm/
#   bench/gpu_gemm_check.sh            there, from the repository root, carrying .gpu_gemm
#                                      and .whl (the bitsandbytes wheel)
#
# Environment: OUT (logs; default .gpu_gemm/out), JOBS (16), STEPS (default
# "build test sanitize bench"), SANITIZER_TOOLS (default "memcheck racecheck
# initcheck"), SANITIZER_CASES (random cases per suite, 3), BENCH_ARGS (passed to
# bench/expert_gemm.py). The two suites run side by side in each step.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=$(pwd)/.gpu_gemm

if [ "${1:-}" = prepare ]; then
  set -e
  grep -qx '/.gpu_gemm/' .git/info/exclude 2>/dev/null || echo '/.gpu_gemm/' >> .git/info/exclude
  rm -rf "$stage" && mkdir -p "$stage/tree" "$stage/deps/include" "$stage/deps/lib/cmake" "$stage/deps/share/cmake"
  git archive HEAD | tar -x -C "$stage/tree"
  git rev-parse HEAD > "$stage/commit"
  deps=$stage/deps
  cp -r /usr/include/doctest /usr/include/nlohmann /usr/include/CLI "$deps/include/"
  cp -r /usr/lib/cmake/doctest "$deps/lib/cmake/"
  # Debian's doctest config names /usr; make it relative like the others.
  sed -i 's|set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
    "$deps/lib/cmake/doctest/doctestTargets.cmake"
  cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$deps/share/cmake/"
  cp -r "$(python3 -c 'import tvm_ffi.libinfo as l; print(l.find_dlpack_include_path())')/dlpack" "$deps/include/"
  # The CPU backend's CBLAS: the reference BLAS (needs only libc), OpenBLAS' header.
  cp /usr/include/x86_64-linux-gnu/openblas-openmp/{cblas.h,openblas_config.h} "$deps/include/"
  cp -L /usr/lib/x86_64-linux-gnu/blas/libblas.so.3 "$deps/lib/"
  echo "prepared $(cat "$stage/commit") in $stage ($(du -sh "$stage" | cut -f1))"
  exit 0
fi

root=$stage/tree
out=${OUT:-$stage/out}
mkdir -p "$out"
jobs=${JOBS:-16}
steps=${STEPS:-build test sanitize bench}
build=/tmp/moeq-gemm-build
deps=$stage/deps
status=0
export LD_LIBRARY_PATH="$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== commit $(cat "$stage/commit"); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)" |
  tee "$out/build.log"

suites=(test_cuda_expert_gemm test_cuda_expert_gemm_backward)

step_build() {
  echo "== configure + build ($jobs jobs)"
  {
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEQ_CUDA=ON \
      -DCMAKE_PREFIX_PATH="$deps" -DMOEQ_DLPACK_INCLUDE_DIR="$deps/include" \
      -DMOEQ_CBLAS_INCLUDE_DIR="$deps/include" -DMOEQ_CBLAS_LIBRARY="$deps/lib/libblas.so.3" \
      -DMOEQ_BUILD_PYTHON=OFF -DMOEQ_BUILD_JAVA=OFF -DMOEQ_BUILD_BENCH=OFF &&
    cmake --build "$build" -j "$jobs" --target moeq test_cuda_expert_gemm test_cuda_expert_gemm_backward
  } >>"$out/build.log" 2>&1 || { echo "build failed"; tail -40 "$out/build.log"; exit 1; }
  tail -2 "$out/build.log"
}

step_test() {
  echo "== CUDA expert GEMM tests"
  for suite in "${suites[@]}"; do
    ( time timeout 300 "$build/tests/$suite" ) >"$out/$suite.log" 2>&1 &
  done
  for job in $(jobs -p); do wait "$job" || status=1; done
  cat "$out"/test_cuda_expert_gemm*.log >"$out/tests.log" && rm "$out"/test_cuda_expert_gemm*.log
  grep -E "outputs,|cases,|test cases:|assertions:|ERROR|real" "$out/tests.log" | head -40
  grep -c "ERROR" "$out/tests.log"
}

step_sanitize() {
  echo "== compute-sanitizer (${SANITIZER_CASES:-3} random cases per suite)"
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for tool in ${SANITIZER_TOOLS:-memcheck racecheck initcheck}; do
    for suite in "${suites[@]}"; do
      # The device-memory test reads cudaMemGetInfo, which the sanitizer's own
      # allocations perturb; everything else runs.
      ( MOEQ_GEMM_TEST_CASES=${SANITIZER_CASES:-3} timeout 180 "$sanitizer" --tool "$tool" \
          --error-exitcode 3 "$build/tests/$suite" -tce='*allocates no device memory*' \
          >"$out/$tool-$suite.log" 2>&1
        echo "$tool $suite: exit $?" >>"$out/$tool-$suite.log" ) &
    done
    wait
    for suite in "${suites[@]}"; do
      cat "$out/$tool-$suite.log" >>"$out/sanitize.log" && rm "$out/$tool-$suite.log"
    done
  done
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|: exit" "$out/sanitize.log"
  if grep -q ": exit [^0]" "$out/sanitize.log"; then status=1; fi
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

for step in $steps; do "step_$step"; done
exit $status
