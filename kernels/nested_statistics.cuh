// Nested ("double") quantization of the block statistics on the GPU, launched
// after the quantize kernel has left every block's float32 absmax in the workspace.
#pragma once

#include "core/problems.hpp"
#include "nested_workspace.cuh"

#include <cuda_runtime.h>

namespace moeq::cuda {

// Fills out.absmax_codes, nested_absmax, nested_code and nested_offset from
// workspace.absmax, on `stream`, with the CPU backend's arithmetic and order.
void quantize_statistics(const NestedWorkspace& workspace, const QuantizedBuffers& out,
                         cudaStream_t stream);

}  // namespace moeq::cuda
