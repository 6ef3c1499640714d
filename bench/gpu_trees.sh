# The staged trees of bench/gpu_compare.sh and bench/gpu_ncu.sh (.gpu_multi/NN):
# built here ahead of a device call, and found there. Sourced with `stage` set.

# Builds the staged tree $1 in $1/build as the device would (gpu_gemm_check.sh's
# configuration) for sm_90a and sm_80 without PTX (CMakeLists.txt: sm_90a must not come
# last), the library and, with $2 = suites, the CUDA suites; then
# drops what only a rebuild needs.
prebuild() {
  local tree=$1 deps=$stage/deps start=$SECONDS
  local targets=moeq
  [ "${2:-}" = suites ] && targets="moeq test_cuda_expert_gemm test_cuda_expert_gemm_backward
    test_cuda_concurrency test_cuda_swiglu test_cuda_large_gemm"
  cmake -S "$tree/tree" -B "$tree/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEQ_CUDA=ON \
    -DMOEQ_CUDA_GENCODE="-gencode=arch=compute_90a,code=sm_90a;-gencode=arch=compute_80,code=sm_80" \
    -DCMAKE_PREFIX_PATH="$deps" -DMOEQ_DLPACK_INCLUDE_DIR="$deps/include" \
    -DMOEQ_CBLAS_INCLUDE_DIR="$deps/include" -DMOEQ_CBLAS_LIBRARY="$deps/lib/libblas.so.3" \
    -DMOEQ_BUILD_PYTHON=OFF -DMOEQ_BUILD_JAVA=OFF -DMOEQ_BUILD_BENCH=OFF > "$tree/prebuild.log" 2>&1 &&
  # shellcheck disable=SC2086  # targets is a list
  nice cmake --build "$tree/build" -j "$(nproc)" --target $targets >> "$tree/prebuild.log" 2>&1 ||
    { tail -30 "$tree/prebuild.log"; echo "prebuild of $tree failed" >&2; return 1; }
  # Carried as an xz archive: the GPU code compresses ~12x (libmoeq 16 MB -> 1.4 MB).
  find "$tree/build" -name '*.o' -delete
  tar -C "$tree" -cJf "$tree/build.tar.xz" build && rm -rf "$tree/build"
  touch "$tree/prebuilt"
  echo "prebuilt $tree in $((SECONDS - start)) s ($(du -sh "$tree/build.tar.xz" | cut -f1) to carry)"
}

# There: whether staged tree $1 was prebuilt (with its CUDA suites where $2 = suites)
# and runs on this machine (its libmoeq loads, its suites start); if so, /tmp/moeq-$1
# (where the steps would have built it) names it.
use_prebuilt() {
  local build=$stage/$1/build
  [ -e "$stage/$1/prebuilt" ] || return 1
  # Unpacked in place: the build's absolute paths (RPATH, CTest) are this checkout's.
  [ -d "$build" ] || python3 - "$stage/$1/build.tar.xz" "$stage/$1" <<'UNPACK' || return 1
import sys, tarfile
with tarfile.open(sys.argv[1]) as archive:
    try:  # Python >= 3.12 (and 3.11.4): refuse members that would land outside
        archive.extractall(sys.argv[2], filter="tar")
    except TypeError:
        archive.extractall(sys.argv[2])
UNPACK
  LD_LIBRARY_PATH=$stage/deps/lib python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' "$build/libmoeq.so" ||
    return 1
  [ "${2:-}" != suites ] || "$build/tests/test_cuda_expert_gemm" --help > /dev/null || return 1
  rm -rf "/tmp/moeq-$1" && ln -s "$build" "/tmp/moeq-$1"
  echo "prebuilt here: $build"
}
