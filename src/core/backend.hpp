// The operations each backend implements, over the validated problems.
#pragma once

#include "core/problems.hpp"

namespace moeq {

namespace cpu {
void quantize(const QuantizeProblem& problem);
void dequantize(const DequantizeProblem& problem);
void expert_gemm(const ExpertGemmProblem& problem);
void expert_gemm_backward(const ExpertGemmGradProblem& problem);
void swiglu(const SwigluProblem& problem);
void swiglu_backward(const SwigluProblem& problem);
}  // namespace cpu

// Implemented in kernels/ when built with CUDA, and by src/api/cuda_absent.cpp
// (each throwing MOEQ_ERR_UNSUPPORTED) when not. `stream` is a cudaStream_t.
namespace cuda {
int device_count();  // visible GPUs (0 when none or no driver)
const char* build_info();  // e.g. "CUDA 13.0, sm_80 sm_90a + PTX"
void quantize(const QuantizeProblem& problem, void* stream);
void dequantize(const DequantizeProblem& problem, void* stream);
size_t quantize_workspace_bytes(const QuantizedBuffers& layout);
void expert_gemm(const ExpertGemmProblem& problem, void* stream);
void expert_gemm_backward(const ExpertGemmGradProblem& problem, void* stream);
size_t expert_gemm_workspace_bytes(const ExpertGemmProblem& problem);
size_t expert_gemm_backward_workspace_bytes(const ExpertGemmGradProblem& problem);
void swiglu(const SwigluProblem& problem, void* stream);
void swiglu_backward(const SwigluProblem& problem, void* stream);
// Memory for moeq_tensor_empty on the current device.
void* allocate(size_t bytes, int device_id);
void release(void* pointer, int device_id);
}  // namespace cuda

}  // namespace moeq
