#!/usr/bin/env bash
# The Python package's GPU tests in one device call, from a CUDA build made here (the GPU
# machine's image has no SWIG and its Python differs from the build machine's).
#
#   bindings/python/gpu_check.sh prepare      here: a snapshot of HEAD built with CUDA
#                                              (JOBS, default 2) in $STAGE/build; the native
#                                              library, the reference BLAS, the generated SWIG
#                                              wrapper and the headers in $STAGE/carry
#   bindings/python/gpu_check.sh [TEST ...]   there, from the repository root, carrying
#                                              $STAGE/carry and .whl (the bitsandbytes wheel):
#                                              compiles the SWIG module for that machine's
#                                              python3, stages the package from this working
#                                              tree's bindings/python/src, installs
#                                              bitsandbytes, runs tests/test_training_e2e.py
#                                              (all three models, no -x), then pytest -x over
#                                              the TESTs given (paths under bindings/python)
#
# STAGE defaults to build-py/e2e. The logs and the end-to-end test's numbers (e2e.json) land
# in OUT (default $STAGE/out); E2E_TIMEOUT (120 s) and TESTS_TIMEOUT (60 s) bound the runs.
set -uo pipefail
cd "$(dirname "$0")/../.."
stage=${STAGE:-build-py/e2e}
carry=$stage/carry

if [ "${1:-}" = prepare ]; then
  set -e
  rm -rf "$stage/src" && mkdir -p "$stage/src"
  git archive HEAD | tar -x -C "$stage/src"
  git rev-parse HEAD > "$stage/commit"
  dlpack=$(python3 -c 'import tvm_ffi.libinfo as l; print(l.find_dlpack_include_path())')
  # The reference BLAS needs only libc, which the GPU image has; OpenBLAS' header.
  blas=/usr/lib/x86_64-linux-gnu/blas/libblas.so.3
  cmake -S "$stage/src" -B "$stage/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEQ_CUDA=ON \
    -DMOEQ_BUILD_TESTS=OFF -DMOEQ_BUILD_BENCH=OFF -DMOEQ_BUILD_JAVA=OFF -DMOEQ_BUILD_RUST=OFF \
    -DMOEQ_BUILD_PYTHON=ON -DMOEQ_DLPACK_INCLUDE_DIR="$dlpack" \
    -DMOEQ_CBLAS_INCLUDE_DIR=/usr/include/x86_64-linux-gnu/openblas-openmp \
    -DMOEQ_CBLAS_LIBRARY="$blas" >/dev/null
  cmake --build "$stage/build" -j "${JOBS:-2}" --target moeq moeq_python_capi
  rm -rf "$carry" && mkdir -p "$carry/lib/fallback" "$carry/include"
  cp -L "$stage/build/libmoeq.so.0" "$blas" "$carry/lib/"
  cp -L "$(gcc -print-file-name=libgomp.so.1)" "$carry/lib/fallback/"
  cp "$stage/build/bindings/python/package/moeq/capi.py" \
    "$stage/build/bindings/python/swig/moeqPYTHON_wrap.c" "$stage/src/bindings/python/swig/"*.[ch] \
    "$stage/commit" "$carry/"
  cp -r "$stage/src/include/moeq" "$dlpack/dlpack" "$carry/include/"
  echo "prepared $(cat "$stage/commit") in $carry ($(du -sh "$carry" | cut -f1))"
  exit 0
fi

out=${OUT:-$stage/out}
mkdir -p "$out" && out=$(cd "$out" && pwd)
echo "== native library of $(cat "$carry/commit"); $(nvidia-smi --query-gpu=name,driver_version \
  --format=csv,noheader 2>/dev/null)"
site=/tmp/moeq-gpu-check
package=$site/moeq
rm -rf "$site" && mkdir -p "$package"
cp -r bindings/python/src/moeq/. "$package/"
cp "$carry/capi.py" "$carry/lib/libmoeq.so.0" "$carry/lib/libblas.so.3" "$package/"
python_include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
cuda=${CUDA_HOME:-/usr/local/cuda}
for source in moeqPYTHON_wrap dlpack_capsule cuda_runtime_glue; do
  cc -c -O1 -fPIC -fvisibility=hidden -std=gnu11 -DMOEQ_PY_WITH_CUDA=1 -I"$carry" \
    -I"$carry/include" -isystem "$python_include" -isystem "$cuda/include" \
    "$carry/$source.c" -o "$site/$source.o" &
done
wait
cudart=$cuda/lib64/libcudart_static.a
[ -f "$cudart" ] || cudart="-L$cuda/lib64 -lcudart"
# shellcheck disable=SC2016,SC2086 # $ORIGIN is for the linker; $cudart may be two words
cc -shared -o "$package/_capi.so" "$site"/*.o -Wl,-rpath,'$ORIGIN' "$package/libmoeq.so.0" \
  $cudart -ldl -lrt -lpthread || { echo "SWIG module: link failed"; exit 1; }
ldconfig -p | grep -q 'libgomp.so.1 ' || export LD_LIBRARY_PATH=$carry/lib/fallback${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
if ls .whl/bitsandbytes-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .whl/bitsandbytes-*.whl >"$out/pip.log" 2>&1 && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
python3 -c 'import moeq, torch, transformers, peft; print(moeq.build_info()); print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' || exit 1
export MOEQ_E2E_JSON=$out/e2e.json PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
status=0
run_pytest() {  # log name, time limit, pytest arguments
  local log=$out/$1.log limit=$2
  shift 2
  (cd bindings/python && timeout "$limit" python3 -m pytest -q -s -rs -p no:cacheprovider "$@") 2>&1 |
    tee "$log" | grep -E "^\[moeq e2e\]|passed|failed|skipped|rror|^E " | cut -c1-1500
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
}
run_pytest e2e "${E2E_TIMEOUT:-120}" tests/test_training_e2e.py
[ $# = 0 ] || run_pytest tests "${TESTS_TIMEOUT:-60}" -x "$@"
exit $status
