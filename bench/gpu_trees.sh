# The staged trees of bench/gpu_compare.sh and bench/gpu_ncu.sh (.gpu_multi/NN), each
# built by bench/gpu_gemm_check.sh's build step: here ahead of a device call
# (prebuild), or there (build_trees, which takes a prebuilt tree where it runs).
# Sourced with `stage` set (and `out` for run_step and build_trees).

# Steps of gpu_gemm_check.sh on staged tree $1 (a name, NN) built in /tmp/moeq-NN:
# run_step NN STEPS [VAR=value...].
run_step() {
  local tree=$1 steps=$2
  shift 2
  env "$@" STAGE="$stage/$tree" DEPS="$stage/deps" BUILD="/tmp/moeq-$tree" OUT="$out/$tree" STEPS="$steps" \
    bash bench/gpu_gemm_check.sh
}

# Here: builds staged tree $1 (a path) in $1/build, the library and, with $2 = suites,
# the CUDA suites, for sm_90a and sm_80 without PTX (CMakeLists.txt: sm_90a must not
# come last); then drops its object files and packs it as an xz archive, which the GPU
# code shrinks ~12x (libmoeq 16 MB -> 1.4 MB).
prebuild() {
  local tree=$1 start=$SECONDS
  local targets=moeq
  [ "${2:-}" = suites ] && targets=""  # empty: gpu_gemm_check.sh's default, the library and the suites
  STAGE="$tree" DEPS="$stage/deps" BUILD="$tree/build" OUT="$tree/prebuild" STEPS=build JOBS="$(nproc)" \
    CMAKE_ARGS="-DMOEQ_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a;-gencode=arch=compute_80,code=sm_80" \
    TARGETS="$targets" nice bash bench/gpu_gemm_check.sh > "$tree/prebuild.log" 2>&1 &&
    ! grep -q "build failed" "$tree/prebuild.log" ||
    { tail -30 "$tree/prebuild.log"; echo "prebuild of $tree failed" >&2; return 1; }
  find "$tree/build" -name '*.o' -delete
  tar -C "$tree" -cJf "$tree/build.tar.xz" build && rm -rf "$tree/build"
  touch "$tree/prebuilt"
  echo "prebuilt $tree in $((SECONDS - start)) s ($(du -sh "$tree/build.tar.xz" | cut -f1) to carry)"
}

# There: whether staged tree $1 (NN) was prebuilt (with its CUDA suites where $2 =
# suites) and runs on this machine (its libmoeq loads, its suites start); if so,
# /tmp/moeq-NN (where run_step finds a build) names it.
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

# There: every staged tree in /tmp/moeq-NN, prebuilt or built side by side (the first
# with its CUDA suites where $1 = suites); logs in $out/NN-build.txt. Prints each tree's
# last build line; fails if a build did.
build_trees() {
  local trees first count jobs tree targets suites status=0
  trees=$(cd "$stage" && ls -d [0-9][0-9] | sort)
  first=$(echo "$trees" | head -1)
  count=$(echo "$trees" | wc -w)
  jobs=$(( $(nproc) / count > 2 ? $(nproc) / count : 2 ))
  for tree in $trees; do
    mkdir -p "$out/$tree"
    suites=""
    [ "$tree" = "$first" ] && suites=${1:-}
    use_prebuilt "$tree" "$suites" > "$out/$tree-build.txt" 2>&1 && continue
    targets=moeq
    [ -n "$suites" ] && targets=""
    ( run_step "$tree" build JOBS=$jobs ${targets:+TARGETS=$targets} > "$out/$tree-build.txt" 2>&1 ) &
  done
  wait
  for tree in $trees; do
    echo "== $tree: $(cat "$stage/$tree/ref") ($(cat "$stage/$tree/commit"))"
    tail -2 "$out/$tree-build.txt"
    grep -q "build failed" "$out/$tree-build.txt" && status=1
  done
  return $status
}
