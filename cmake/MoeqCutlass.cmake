# CUTLASS/CuTe headers (PyPI package nvidia-cutlass) for the Hopper GEMM's wgmma,
# TMA and barrier primitives. Without them the library builds, and Hopper GPUs run
# the mma.sync kernels. Searched in MOEQ_CUTLASS_INCLUDE_DIR, the Python package,
# then the usual prefixes (CMAKE_PREFIX_PATH).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c
            "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))"
    OUTPUT_VARIABLE _moeq_cutlass_hint OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
find_path(MOEQ_CUTLASS_INCLUDE_DIR cute/arch/mma_sm90_gmma.hpp HINTS ${_moeq_cutlass_hint}
          DOC "Folder holding cute/ and cutlass/ (CUTLASS >= 3.5)")
if(MOEQ_CUTLASS_INCLUDE_DIR)
  set(MOEQ_WITH_WGMMA ON)
  message(STATUS "moeq: Hopper wgmma GEMM ON (CUTLASS headers ${MOEQ_CUTLASS_INCLUDE_DIR})")
else()
  set(MOEQ_WITH_WGMMA OFF)
  message(STATUS "moeq: Hopper wgmma GEMM OFF (pip install nvidia-cutlass, or set MOEQ_CUTLASS_INCLUDE_DIR)")
endif()
