// Status names and the thread-local last-error message.
#include "core/error.hpp"

namespace {
thread_local std::string last_error_message;
}

namespace moeq {
void set_last_error(const std::string& message) { last_error_message = message; }
void clear_last_error() { last_error_message.clear(); }
}  // namespace moeq

extern "C" {

MOEQ_API const char* moeq_status_name(moeq_status status) {
  switch (status) {
    case MOEQ_OK: return "MOEQ_OK";
    case MOEQ_ERR_INVALID_ARGUMENT: return "MOEQ_ERR_INVALID_ARGUMENT";
    case MOEQ_ERR_UNSUPPORTED: return "MOEQ_ERR_UNSUPPORTED";
    case MOEQ_ERR_NO_DEVICE: return "MOEQ_ERR_NO_DEVICE";
    case MOEQ_ERR_OUT_OF_MEMORY: return "MOEQ_ERR_OUT_OF_MEMORY";
    case MOEQ_ERR_WORKSPACE_TOO_SMALL: return "MOEQ_ERR_WORKSPACE_TOO_SMALL";
    case MOEQ_ERR_CUDA: return "MOEQ_ERR_CUDA";
    case MOEQ_ERR_INTERNAL: return "MOEQ_ERR_INTERNAL";
    default: return "MOEQ_UNKNOWN_STATUS";
  }
}

MOEQ_API const char* moeq_last_error(void) { return last_error_message.c_str(); }

}  // extern "C"
