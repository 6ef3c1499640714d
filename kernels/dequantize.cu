// CUDA dequantize: code value times block absmax in float32 (the absmax decoded
// from the nested statistics when present), rounded to the output dtype.
#include "core/backend.hpp"
#include "dequantize_kernel.cuh"

namespace moeq::cuda {
namespace {

// Measured on the H200 against the other tilings (bench/quant_tilings.cu, bench/RESULTS.md).
using ChosenDequantizeTiling = DequantizeTiling<8, true, CacheHint::Default, 2, 2>;

}  // namespace

void dequantize(const DequantizeProblem& problem, void* stream_handle) {
  if (problem.in.numel == 0) return;
  DeviceGuard guard(problem.device_id);
  dequantize_tensor<ChosenDequantizeTiling>(problem, as_stream(stream_handle));
}

}  // namespace moeq::cuda
