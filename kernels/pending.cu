// CUDA entry points whose kernels are not written yet: each reports
// MOEQ_ERR_UNSUPPORTED. Every function here moves to its own kernel file as it lands.
#include "core/backend.hpp"
#include "core/error.hpp"

namespace moeq::cuda {
namespace {
[[noreturn]] void pending(const char* op) {
  fail(MOEQ_ERR_UNSUPPORTED, std::string(op) + " on CUDA tensors is not implemented yet; use CPU tensors");
}
}  // namespace


}  // namespace moeq::cuda
