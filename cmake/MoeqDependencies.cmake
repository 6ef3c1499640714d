# Third-party dependencies of the library: DLPack >= 1.0 headers, OpenMP, a CBLAS.

# DLPack >= 1.0 ships with the PyPI package apache-tvm-ffi (Debian's libdlpack-dev
# is 0.6, without versioned tensors). MOEQ_DLPACK_INCLUDE_DIR overrides the search.
if(NOT MOEQ_DLPACK_INCLUDE_DIR)
  find_package(Python3 COMPONENTS Interpreter)
  if(Python3_Interpreter_FOUND)
    execute_process(
      COMMAND ${Python3_EXECUTABLE} -c "import tvm_ffi.libinfo as l; print(l.find_dlpack_include_path())"
      OUTPUT_VARIABLE _moeq_dlpack_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  set(MOEQ_DLPACK_INCLUDE_DIR "${_moeq_dlpack_dir}" CACHE PATH "Folder holding dlpack/dlpack.h (DLPack >= 1.0)")
endif()
if(NOT EXISTS "${MOEQ_DLPACK_INCLUDE_DIR}/dlpack/dlpack.h")
  message(FATAL_ERROR "DLPack >= 1.0 headers not found: pip install apache-tvm-ffi, or set MOEQ_DLPACK_INCLUDE_DIR")
endif()
file(STRINGS "${MOEQ_DLPACK_INCLUDE_DIR}/dlpack/dlpack.h" _moeq_dlpack_major REGEX "#define DLPACK_MAJOR_VERSION")
if(NOT _moeq_dlpack_major MATCHES "DLPACK_MAJOR_VERSION +1")
  message(FATAL_ERROR "DLPack at ${MOEQ_DLPACK_INCLUDE_DIR} is older than 1.0")
endif()

find_package(OpenMP REQUIRED COMPONENTS CXX)

# CBLAS: OpenBLAS built for OpenMP (Debian libopenblas-openmp-dev), so BLAS calls
# made from inside our parallel regions run on the calling thread.
find_path(MOEQ_CBLAS_INCLUDE_DIR cblas.h
          PATHS /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/aarch64-linux-gnu/openblas-openmp
                /usr/include/openblas /usr/include
          NO_DEFAULT_PATH)
find_library(MOEQ_CBLAS_LIBRARY openblas
             PATHS /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/aarch64-linux-gnu/openblas-openmp
             NO_DEFAULT_PATH)
if(NOT MOEQ_CBLAS_LIBRARY)
  find_library(MOEQ_CBLAS_LIBRARY NAMES openblas cblas blas)
endif()
if(NOT MOEQ_CBLAS_INCLUDE_DIR OR NOT MOEQ_CBLAS_LIBRARY)
  message(FATAL_ERROR "A CBLAS (cblas.h + library) is needed: apt-get install libopenblas-openmp-dev")
endif()
add_library(moeq_blas INTERFACE)
target_include_directories(moeq_blas INTERFACE ${MOEQ_CBLAS_INCLUDE_DIR})
target_link_libraries(moeq_blas INTERFACE ${MOEQ_CBLAS_LIBRARY})
message(STATUS "moeq: DLPack ${MOEQ_DLPACK_INCLUDE_DIR}; CBLAS ${MOEQ_CBLAS_LIBRARY}")
