#!/usr/bin/env bash
# Copies what a GPU machine lacks to build moeq and its C++ tests into DEST (run
# here, before a device call that carries DEST): header-only packages with their
# CMake configs (doctest, nlohmann-json, CLI11), the DLPack headers, a CBLAS (the
# reference BLAS, which needs only libc, with OpenBLAS' header), and the CUTLASS/CuTe
# headers that kernels/ include (only those: the whole package is 27 MB).
#
#   bench/gpu_stage_deps.sh DEST     then configure with CMAKE_PREFIX_PATH=DEST,
#                                    MOEQ_DLPACK_INCLUDE_DIR=DEST/include,
#                                    MOEQ_CBLAS_INCLUDE_DIR=DEST/include,
#                                    MOEQ_CBLAS_LIBRARY=DEST/lib/libblas.so.3
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: bench/gpu_stage_deps.sh DEST}
mkdir -p "$dest/include" "$dest/lib/cmake" "$dest/share/cmake"
cp -r /usr/include/doctest /usr/include/nlohmann /usr/include/CLI "$dest/include/"
cp -r /usr/lib/cmake/doctest "$dest/lib/cmake/"
# Debian's doctest config names /usr; make it relative like the others.
sed -i 's|set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
  "$dest/lib/cmake/doctest/doctestTargets.cmake"
cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$dest/share/cmake/"
cp -r "$(python3 -c 'import tvm_ffi.libinfo as l; print(l.find_dlpack_include_path())')/dlpack" "$dest/include/"
cp /usr/include/x86_64-linux-gnu/openblas-openmp/{cblas.h,openblas_config.h} "$dest/include/"
cp -L /usr/lib/x86_64-linux-gnu/blas/libblas.so.3 "$dest/lib/"

cutlass=$(python3 -c "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))")
# The headers the sm_90a pass of every kernel source reads from the package.
for source in kernels/*.cu; do
  nvcc -std=c++17 -M -x cu -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -DMOEQ_WITH_CUDA=1 \
    -DMOEQ_WITH_WGMMA=1 -Iinclude -Isrc -Ikernels -I"$dest/include" -isystem "$cutlass" "$source"
done | tr ' \\' '\n\n' | grep "^$cutlass/" | sort -u | while read -r header; do
  mkdir -p "$dest/include/$(dirname "${header#"$cutlass"/}")"
  cp "$header" "$dest/include/${header#"$cutlass"/}"
done
echo "staged build dependencies in $dest ($(du -sh "$dest" | cut -f1); $(find "$dest/include/cute" "$dest/include/cutlass" -type f | wc -l) CUTLASS headers)"
