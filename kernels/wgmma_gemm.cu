// Host side of the Hopper expert GEMM: which calls it serves, its TMA descriptors
// and its launch, for bfloat16 and float16 activations.
#include "expert_gemm_launch.cuh"
#include "tensor_map.cuh"
#include "wgmma_gemm.cuh"

#include <algorithm>
#include <limits>

namespace moeq::cuda {
namespace {

// wgmma and the sm_90a machine code exist only on compute capability 9.0.
bool device_runs_wgmma() {
#if MOEQ_WITH_WGMMA
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return major == 9 && minor == 0;
#else
  return false;
#endif
}

TensorMapShape activation_map_shape(const RowsGemmParams& params, int64_t rows, CUtensorMapDataType type) {
  return TensorMapShape{params.rows.data, type, 2, static_cast<uint64_t>(rows),
                        static_cast<uint64_t>(params.depth), static_cast<uint64_t>(params.rows.ld) * 2,
                        kWgmmaTokens, kWgmmaDepth, CU_TENSOR_MAP_SWIZZLE_128B};
}

// The packed weight as [E * D1, D2 / 2] bytes, in boxes of one stage (StageChunks),
// swizzled as packed_offset reads them.
TensorMapShape weight_map_shape(const RowsGemmParams& params, int64_t experts, bool transposed) {
  const QuantWeightView& w = params.weight;
  return TensorMapShape{w.packed, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, static_cast<uint64_t>(experts * w.dim1),
                        static_cast<uint64_t>(w.dim2 / 2), static_cast<uint64_t>(w.dim2 / 2),
                        static_cast<uint32_t>(transposed ? kWgmmaDepth : kWgmmaFeatures),
                        static_cast<uint32_t>((transposed ? kWgmmaFeatures : kWgmmaDepth) / 2),
                        transposed ? CU_TENSOR_MAP_SWIZZLE_64B : CU_TENSOR_MAP_SWIZZLE_32B};
}

// Plain absmax as [E * D1, D2 / blocksize] float32, in boxes of a stage's rows by
// kWgmmaAbsmaxPerRow blocks (16 bytes): the copy engine takes the rows' strided
// 4-byte gathers off the producer warps. TMA needs 16-byte multiples for the rows,
// so other shapes (and nested absmax) keep the gathers.
TensorMapShape absmax_map_shape(const RowsGemmParams& params, int64_t experts, bool transposed) {
  const QuantWeightView& w = params.weight;
  const uint64_t blocks_per_row = static_cast<uint64_t>(w.dim2 >> w.blocksize_log2);
  return TensorMapShape{w.absmax, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, static_cast<uint64_t>(experts * w.dim1),
                        blocks_per_row, blocks_per_row * 4,
                        static_cast<uint32_t>(transposed ? kWgmmaDepth : kWgmmaFeatures), kWgmmaAbsmaxPerRow,
                        CU_TENSOR_MAP_SWIZZLE_NONE};
}

CUtensorMapDataType map_type(ScalarType activation) {
  return activation == ScalarType::BFloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
}

template <class Element, bool kTransposed>
void launch_kernel(const CUtensorMap& x_map, const CUtensorMap& w_map, const CUtensorMap& absmax_map,
                   const WgmmaGemmParams& p, int64_t blocks, cudaStream_t stream) {
  constexpr auto kernel = wgmma_gemm_kernel<Element, kTransposed>;
  allow_dynamic_smem<kernel>(kWgmmaSmemBytes);
  launch_chained(kernel, static_cast<unsigned>(blocks), kWgmmaThreads, kWgmmaSmemBytes, stream, "wgmma_gemm_kernel",
                 x_map, w_map, absmax_map, p);
}

}  // namespace

bool wgmma_gemm_serves(ScalarType activation, bool b_transposed, const RowsGemmParams& params, int64_t rows,
                       int64_t experts) {
  if (activation == ScalarType::Float32 || params.out.type != activation ||
      params.out.col_stride != 1 || params.weight.dim2 % kChunkElements != 0 ||
      (params.weight.nested && reinterpret_cast<uintptr_t>(params.weight.absmax_codes) % 4 != 0) ||
      !device_runs_wgmma())
    return false;
  const int64_t tiles = (rows / kWgmmaTokens + experts) * ((params.cols + kWgmmaFeatures - 1) / kWgmmaFeatures);
  return tiles <= std::numeric_limits<int32_t>::max() &&
         experts * params.weight.dim1 <= std::numeric_limits<int32_t>::max() &&
         rows <= std::numeric_limits<int32_t>::max() - kWgmmaTokens &&
         tensor_map_fits(activation_map_shape(params, rows, map_type(activation))) &&
         tensor_map_fits(weight_map_shape(params, experts, b_transposed));
}

void launch_wgmma_gemm(ScalarType activation, bool b_transposed, const RowsGemmParams& params,
                       const ExpertSchedule& schedule, int64_t rows, int64_t experts, cudaStream_t stream) {
  WgmmaGemmParams p{};
  p.schedule = schedule;
  p.feature_tiles = (params.cols + kWgmmaFeatures - 1) / kWgmmaFeatures;
  p.depth = params.depth;
  p.cols = params.cols;
  p.weight = params.weight;
  p.weight_blocks = (experts * params.weight.dim1 * params.weight.dim2) >> params.weight.blocksize_log2;
  p.rank = params.rank;
  p.lora_scale = params.lora_scale;
  p.lora_rows = params.lora_rows;
  p.lora_weight = params.lora_weight;
  p.out = params.out;
  p.out_vectors = reinterpret_cast<uintptr_t>(params.out.data) % 16 == 0 && params.out.row_stride % 8 == 0;
  const CUtensorMap x_map = make_tensor_map(activation_map_shape(params, rows, map_type(activation)));
  const CUtensorMap w_map = make_tensor_map(weight_map_shape(params, experts, b_transposed));
  const TensorMapShape absmax_shape = absmax_map_shape(params, experts, b_transposed);
  p.absmax_by_tma = !params.weight.nested && tensor_map_fits(absmax_shape);
  // Unused without absmax_by_tma (the kernel takes a map either way).
  const CUtensorMap absmax_map = p.absmax_by_tma ? make_tensor_map(absmax_shape) : CUtensorMap{};
  // Persistent: one block per multiprocessor, or fewer when there are fewer tiles.
  int device = 0, multiprocessors = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute(MultiProcessorCount)");
  const int64_t blocks = std::min<int64_t>(max_row_tiles(rows, schedule) * p.feature_tiles, multiprocessors);
  if (blocks == 0) return;
  dispatch_scalar(activation, [&](auto tag) {
    using Element = typename OperandOf<decltype(tag)>::Element;
    if constexpr (!std::is_same_v<decltype(tag), float>) {
      if (b_transposed) launch_kernel<Element, true>(x_map, w_map, absmax_map, p, blocks, stream);
      else launch_kernel<Element, false>(x_map, w_map, absmax_map, p, blocks, stream);
    }
  });
  check_launch("wgmma_gemm_kernel");
}

}  // namespace moeq::cuda
