#!/usr/bin/env bash
# The C++ suites again, built with AddressSanitizer + UndefinedBehaviorSanitizer
# (MOEQ_SANITIZE=ON; CPU only, no bindings or benchmarks) in their own build folder.
# Any sanitizer report fails its suite: errors halt, leaks are reported at exit.
#   tests/run_sanitized_suites.sh
# Environment: MOEQ_ASAN_BUILD_DIR (default build-asan), JOBS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${MOEQ_ASAN_BUILD_DIR:-build-asan}
jobs=${JOBS:-$(nproc)}

echo "== configuring and building the sanitized suites ($build_dir)"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEQ_SANITIZE=ON -DMOEQ_CUDA=OFF \
  -DMOEQ_BUILD_PYTHON=OFF -DMOEQ_BUILD_RUST=OFF -DMOEQ_BUILD_JAVA=OFF -DMOEQ_BUILD_BENCH=OFF \
  -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build_dir" -j "$jobs"

echo "== running the suites under ASan + UBSan"
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Not installed_package_is_usable: its consumer project is built without the
# sanitizers, and an uninstrumented program cannot load an instrumented libmoeq.so
# (the ASan runtime must come first); the regular build runs it.
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" -E '^installed_package_is_usable$'
