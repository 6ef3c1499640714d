// moeq_version, moeq_build_info, moeq_cuda_available.
#include "core/backend.hpp"

#include <moeq/moeq.h>

#include <string>

#define MOEQ_STRINGIFY_INNER(x) #x
#define MOEQ_STRINGIFY(x) MOEQ_STRINGIFY_INNER(x)

extern "C" {

MOEQ_API uint32_t moeq_version(void) { return MOEQ_VERSION_NUMBER; }

MOEQ_API const char* moeq_build_info(void) {
  static const std::string info = std::string("moeq ") + MOEQ_STRINGIFY(MOEQ_VERSION_MAJOR) "." +
                                  MOEQ_STRINGIFY(MOEQ_VERSION_MINOR) "." +
                                  MOEQ_STRINGIFY(MOEQ_VERSION_PATCH) "; backends: cpu (OpenMP, " +
                                  "OpenBLAS)" + "; " + moeq::cuda::build_info();
  return info.c_str();
}

MOEQ_API int32_t moeq_cuda_available(void) { return moeq::cuda::device_count() > 0 ? 1 : 0; }

}  // extern "C"
