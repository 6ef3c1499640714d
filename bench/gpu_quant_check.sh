#!/usr/bin/env bash
# GPU check of CUDA quantize/dequantize in one device call, from a CUDA build made here
# (no build time on the device): tests/test_cuda_quantize (large tensors too), the
# tilings bench (bench/quant_tilings.cu), bench/quant.py against bitsandbytes, then the
# suite under compute-sanitizer memcheck, racecheck, initcheck and synccheck (quick subset). Logs
# and bench JSON land in $OUT.
#
#   bench/gpu_quant_check.sh prepare   on the build machine: HEAD's snapshot built with
#                                      CUDA (JOBS, default 2) in build-gpuq/, its binaries,
#                                      scripts and the run-time libraries in .gpu_quant/
#   bench/gpu_quant_check.sh           on the GPU machine (carry .gpu_quant and .whl;
#                                      SKIP_BENCH=1: tests and sanitizers only, no .whl)
#
# The snapshot keeps the run reproducible (one commit) while others edit the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stage=$root/.gpu_quant
carry=$stage/carry

# Copies the files of $1 that differ into $2 and drops those $1 lacks, so unchanged
# sources keep their times and the build here stays incremental.
sync_tree() {
  local from=$1 to=$2 file
  mkdir -p "$to"
  (cd "$from" && find . -type f) | while read -r file; do
    cmp -s "$from/$file" "$to/$file" || { mkdir -p "$(dirname "$to/$file")"; cp "$from/$file" "$to/$file"; }
  done
  (cd "$to" && find . -type f) | while read -r file; do [ -e "$from/$file" ] || rm "$to/$file"; done
}

prepare() {
  grep -qx '/.gpu_quant/' .git/info/exclude 2>/dev/null || echo '/.gpu_quant/' >> .git/info/exclude
  local source=$root/build-gpuq/src build=$root/build-gpuq/build snapshot
  snapshot=$(mktemp -d)
  git archive HEAD | tar -x -C "$snapshot"
  sync_tree "$snapshot" "$source"
  rm -rf "$snapshot"
  local dlpack blas=/usr/lib/x86_64-linux-gnu/blas/libblas.so.3
  dlpack=$(python3 -c 'import tvm_ffi.libinfo as l; print(l.find_dlpack_include_path())')
  # The reference BLAS needs only libc, which the GPU image has; OpenBLAS' header.
  [ -f "$build/build.ninja" ] || cmake -S "$source" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DMOEQ_CUDA=ON -DMOEQ_BUILD_BENCH=OFF -DMOEQ_BUILD_PYTHON=OFF \
    -DMOEQ_BUILD_JAVA=OFF -DMOEQ_BUILD_RUST=OFF -DMOEQ_DLPACK_INCLUDE_DIR="$dlpack" \
    -DMOEQ_CBLAS_INCLUDE_DIR=/usr/include/x86_64-linux-gnu/openblas-openmp \
    -DMOEQ_CBLAS_LIBRARY="$blas" >/dev/null
  cmake --build "$build" -j "${JOBS:-2}" --target moeq test_cuda_quantize
  local tilings=$build/quant_tilings
  if [ ! -f "$tilings" ] || [ -n "$(find "$source/kernels" "$source/src/core" "$source/bench/quant_tilings.cu" \
      "$build/libmoeq.so.0" -newer "$tilings" -print -quit)" ]; then
    nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -Xcompiler=-Wall \
      -I"$source/src" -I"$source/kernels" -I"$source/include" -I"$dlpack" \
      "$source/bench/quant_tilings.cu" "$source/kernels/nested_statistics.cu" "$source/kernels/encode_table.cu" \
      -L"$build" -l:libmoeq.so.0 -o "$tilings"
  fi
  rm -rf "$stage" && mkdir -p "$carry/lib/fallback" "$carry/bin" "$carry/bench"
  cp -L "$build/libmoeq.so.0" "$blas" "$carry/lib/"
  cp -L "$(gcc -print-file-name=libgomp.so.1)" "$carry/lib/fallback/"
  cp "$build/tests/test_cuda_quantize" "$tilings" "$carry/bin/"
  cp "$source/bench/quant.py" "$source/bench/moeq_ctypes.py" "$carry/bench/"
  # The suite reads the golden vectors where this build unpacked them (MOEQ_GOLDEN_DIR).
  echo "$build/tests/golden" > "$carry/golden_parent"
  git rev-parse HEAD > "$carry/commit"
  echo "prepared $(cat "$carry/commit") in $carry ($(du -sh "$carry" | cut -f1))"
}

gpu_check() {
  local out=${OUT:-$stage/out}
  mkdir -p "$out"
  # The suite links the CUDA runtime of the toolkit there (13.0, as here).
  export LD_LIBRARY_PATH=$carry/lib:${CUDA_HOME:-/usr/local/cuda}/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  ldconfig -p | grep -q 'libgomp.so.1 ' || export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$carry/lib/fallback
  local golden
  golden=$(cat "$carry/golden_parent")
  mkdir -p "$golden" && tar -xzf tests/data/bnb_golden_public.tar.gz -C "$golden"
  local suite=$carry/bin/test_cuda_quantize status=0 start=$SECONDS
  echo "== commit $(cat "$carry/commit"); $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
  echo "== test_cuda_quantize (MOEQ_LARGE_TESTS=1)"
  MOEQ_LARGE_TESTS=1 timeout 120 "$suite" -d > "$out/tests.log" 2>&1 || status=1
  grep -E "^[0-9.]+ s|test cases|assertions|Status|ERROR|FAILED" "$out/tests.log" | cut -c1-200  || true
  if [ -z "${SKIP_BENCH:-}" ]; then
    echo "== bench/quant_tilings ($((SECONDS - start)) s in)"
    timeout 120 "$carry/bin/quant_tilings" > "$out/tilings.log" 2>&1 || status=1
    echo "== bench/quant.py ($((SECONDS - start)) s in)"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl ||
      status=1
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 timeout 120 python3 "$carry/bench/quant.py" "$carry/lib/libmoeq.so.0" \
      > "$out/bench.log" 2>&1 || status=1
  fi
  # The four tools side by side (their cost is mostly on the host), on the quick subset.
  echo "== compute-sanitizer ($((SECONDS - start)) s in)"
  local sanitizer tool pids=()
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for tool in memcheck racecheck initcheck synccheck; do
    MOEQ_TEST_QUICK=1 timeout "${SANITIZER_TIMEOUT:-100}" "$sanitizer" --tool $tool --error-exitcode 9 "$suite" \
      > "$out/sanitizer_$tool.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  for tool in memcheck racecheck initcheck synccheck; do
    echo "-- $tool: $(grep -hE "ERROR SUMMARY|RACECHECK SUMMARY|test cases" "$out/sanitizer_$tool.log" | tr '\n' ' ')"
  done
  echo "== done in $((SECONDS - start)) s"
  [ -n "${SKIP_BENCH:-}" ] && return $status
  echo "== the tilings' ceilings and checks ($out/tilings.log has all), quant.py's table"
  grep -E "^==|copy \(|memset|write 16|traffic|MISMATCH" "$out/tilings.log" | cut -c1-110 || true
  sed -n '/^tensor /,$p' "$out/bench.log"
  grep -E "FAIL|Error|error" "$out/bench.log" | head -5 || true
  return $status
}

case "${1:-}" in
  prepare) prepare ;;
  "") gpu_check ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
