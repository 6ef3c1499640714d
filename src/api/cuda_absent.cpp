// The CUDA backend of a build without CUDA: every entry reports that it is absent.
// (require_cuda_device stops calls before they get here; these keep the link whole.)
#include "core/backend.hpp"
#include "core/error.hpp"

namespace moeq::cuda {
namespace {
[[noreturn]] void absent() { fail(MOEQ_ERR_UNSUPPORTED, "this libmoeq was built without CUDA"); }
}  // namespace

int device_count() { return 0; }
const char* build_info() { return "CUDA: not built"; }
void quantize(const QuantizeProblem&, void*) { absent(); }
void dequantize(const DequantizeProblem&, void*) { absent(); }
size_t quantize_workspace_bytes(const QuantizedBuffers&) { return 0; }
void expert_gemm(const ExpertGemmProblem&, void*) { absent(); }
void expert_gemm_backward(const ExpertGemmGradProblem&, void*) { absent(); }
size_t expert_gemm_workspace_bytes(const ExpertGemmProblem&) { return 0; }
size_t expert_gemm_backward_workspace_bytes(const ExpertGemmGradProblem&) { return 0; }
void swiglu(const SwigluProblem&, void*) { absent(); }
void swiglu_backward(const SwigluProblem&, void*) { absent(); }
void* allocate(size_t, int) { absent(); }
void release(void*, int) {}

}  // namespace moeq::cuda
