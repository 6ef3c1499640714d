#!/usr/bin/env bash
# GPU check of CUDA quantize/dequantize in one device call: configure and build the
# library and tests/test_cuda_quantize.cpp, run the suite (large tensors too), run it
# under compute-sanitizer memcheck, racecheck and initcheck (quick subset), then
# bench/quant.py alone on the GPU. Logs and bench JSON land in $OUT.
#
#   bench/gpu_quant_check.sh prepare   on the build machine: snapshot of HEAD plus the
#                                      build dependencies the GPU image lacks, in .gpu_quant/
#   bench/gpu_quant_check.sh           on the GPU machine (carry .gpu_quant and .whl)
#
# The snapshot keeps the run reproducible (one commit) while others edit the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stage=$root/.gpu_quant

prepare() {
  grep -qx '/.gpu_quant/' .git/info/exclude 2>/dev/null || echo '/.gpu_quant/' >> .git/info/exclude
  rm -rf "$stage" && mkdir -p "$stage/tree" "$stage/deps/include" "$stage/deps/lib/cmake" "$stage/deps/share/cmake"
  git archive HEAD | tar -x -C "$stage/tree"
  git rev-parse HEAD > "$stage/commit"
  # Header-only packages and their CMake configs (doctest's names /usr: made relative).
  local deps=$stage/deps
  cp -r /usr/include/doctest /usr/include/nlohmann /usr/include/CLI "$deps/include/"
  cp -r /usr/lib/cmake/doctest "$deps/lib/cmake/"
  sed -i 's|set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
    "$deps/lib/cmake/doctest/doctestTargets.cmake"
  cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$deps/share/cmake/"
  cp -r "$(python3 -c 'import tvm_ffi.libinfo as l; print(l.find_dlpack_include_path())')/dlpack" "$deps/include/"
  # CBLAS for the CPU backend: the reference BLAS (only libc needed), OpenBLAS' header.
  mkdir -p "$deps/blas/include" "$deps/blas/lib"
  cp /usr/include/x86_64-linux-gnu/openblas-openmp/{cblas.h,openblas_config.h} "$deps/blas/include/"
  cp -L /usr/lib/x86_64-linux-gnu/blas/libblas.so.3 "$deps/blas/lib/"
  echo "prepared $(cat "$stage/commit") in $stage ($(du -sh "$stage" | cut -f1))"
}

gpu_check() {
  local out=${OUT:-$root/.gpu_quant/out}
  mkdir -p "$out"
  local deps=$stage/deps build=/tmp/moeq-build
  export LD_LIBRARY_PATH=$deps/blas/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "== commit $(cat "$stage/commit"); $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
  echo "== configure + build"
  (cmake -S "$stage/tree" -B $build -G Ninja -DMOEQ_CUDA=ON -DMOEQ_BUILD_BENCH=OFF -DMOEQ_BUILD_PYTHON=OFF \
      -DCMAKE_PREFIX_PATH="$deps" -DMOEQ_DLPACK_INCLUDE_DIR="$deps/include" \
      -DMOEQ_CBLAS_INCLUDE_DIR="$deps/blas/include" -DMOEQ_CBLAS_LIBRARY="$deps/blas/lib/libblas.so.3" &&
    ninja -C $build -j16 moeq test_cuda_quantize) > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
  local suite=$build/tests/test_cuda_quantize
  local status=0
  echo "== test_cuda_quantize (MOEQ_LARGE_TESTS=1)"
  MOEQ_LARGE_TESTS=1 $suite -d 2>&1 | tee "$out/tests.log" | grep -E "^[0-9.]+ s|test cases|assertions|Status" || status=1
  # The three tools side by side (their cost is mostly on the host), on the quick subset.
  local sanitizer tool pids=()
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for tool in memcheck racecheck initcheck; do
    MOEQ_TEST_QUICK=1 timeout 150 "$sanitizer" --tool $tool --error-exitcode 9 $suite \
      > "$out/sanitizer_$tool.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  for tool in memcheck racecheck initcheck; do
    echo "== compute-sanitizer --tool $tool (MOEQ_TEST_QUICK=1)"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test cases|Status" "$out/sanitizer_$tool.log" || tail -5 "$out/sanitizer_$tool.log"
  done
  echo "== bench/quant.py"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 "$stage/tree/bench/quant.py" $build/libmoeq.so 2>&1 |
    tee "$out/bench.log" || status=1
  return $status
}

case "${1:-}" in
  prepare) prepare ;;
  "") gpu_check ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac
