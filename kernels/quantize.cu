// CUDA quantize: the quantize kernel of the chosen tiling, then for nested
// quantization the statistics of nested_statistics.cu.
#include "core/backend.hpp"
#include "quantize_kernel.cuh"

namespace moeq::cuda {
namespace {

// Measured on the H200 against the other tilings (bench/quant_tilings.cu, bench/RESULTS.md).
using ChosenQuantizeTiling = QuantizeTiling<256, 2, 2, false, CacheHint::Streaming, 0>;

}  // namespace

size_t quantize_workspace_bytes(const QuantizedBuffers& layout) {
  return layout.nested ? nested_workspace_bytes(layout.block_count()) : 0;
}

void quantize(const QuantizeProblem& problem, void* stream_handle) {
  DeviceGuard guard(problem.device_id);
  const cudaStream_t stream = as_stream(stream_handle);
  StreamScratch scratch(stream);
  void* workspace = problem.workspace;
  if (problem.out.nested && workspace == nullptr)
    workspace = scratch.allocate(quantize_workspace_bytes(problem.out));
  quantize_tensor<ChosenQuantizeTiling>(problem, workspace, stream);
}

}  // namespace moeq::cuda
