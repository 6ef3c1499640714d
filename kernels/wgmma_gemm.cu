// Host side of the Hopper expert GEMM: which calls it serves, its TMA descriptors
// and its launch, for bfloat16 and float16 activations.
#include "expert_gemm_launch.cuh"
#include "tensor_map.cuh"
#include "wgmma_gemm.cuh"

#include <algorithm>
#include <atomic>
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
                        kWgmmaXBoxRows, kWgmmaDepth, CU_TENSOR_MAP_SWIZZLE_128B};
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

CUtensorMapDataType map_type(ScalarType activation) {
  return activation == ScalarType::BFloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
}

// How many of `kernel`'s clusters run at once on the current device (not always
// half the SMs: a GPC with an odd number of free SMs leaves one idle). Asked once
// per kernel and device; calls on any thread may race to fill the same value.
template <class Kernel>
int resident_clusters(Kernel kernel, const cudaLaunchConfig_t& config) {
  constexpr int kDevices = 64;
  static std::atomic<int> known[kDevices];
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  const int cached = device < kDevices ? known[device].load(std::memory_order_relaxed) : 0;
  if (cached > 0) return cached;
  int resident = 0;
  check_cuda(cudaOccupancyMaxActiveClusters(&resident, kernel, &config), "cudaOccupancyMaxActiveClusters");
  if (resident < 1) fail(MOEQ_ERR_CUDA, "the Hopper expert GEMM's cluster of blocks does not fit on this GPU");
  if (device < kDevices) known[device].store(resident, std::memory_order_relaxed);
  return resident;
}

// Clusters of kWgmmaClusterBlocks: as many as run at once (persistent), at most
// one per cluster tile.
template <class Element, bool kTransposed>
void launch_kernel(const CUtensorMap& x_map, const CUtensorMap& w_map, const WgmmaGemmParams& p,
                   int64_t cluster_tiles, cudaStream_t stream) {
  constexpr auto kernel = wgmma_gemm_kernel<Element, kTransposed>;
  allow_dynamic_smem<kernel>(kWgmmaSmemBytes);
  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = kWgmmaClusterBlocks;
  cluster.val.clusterDim.y = cluster.val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.blockDim = dim3(kWgmmaThreads);
  config.dynamicSmemBytes = kWgmmaSmemBytes;
  config.stream = stream;
  config.attrs = &cluster;
  config.numAttrs = 1;
  config.gridDim = dim3(kWgmmaClusterBlocks);  // for the occupancy question: one cluster
  const int resident = resident_clusters(kernel, config);
  config.gridDim = dim3(static_cast<unsigned>(kWgmmaClusterBlocks * std::min<int64_t>(cluster_tiles, resident)));
  check_cuda(cudaLaunchKernelEx(&config, kernel, x_map, w_map, p), "cudaLaunchKernelEx(wgmma_gemm_kernel)");
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
  p.feature_pairs = (p.feature_tiles + kWgmmaClusterBlocks - 1) / kWgmmaClusterBlocks;
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
  const int64_t cluster_tiles = max_row_tiles(rows, schedule) * p.feature_pairs;
  if (cluster_tiles == 0) return;
  dispatch_scalar(activation, [&](auto tag) {
    using Element = typename OperandOf<decltype(tag)>::Element;
    if constexpr (!std::is_same_v<decltype(tag), float>) {
      if (b_transposed) launch_kernel<Element, true>(x_map, w_map, p, cluster_tiles, stream);
      else launch_kernel<Element, false>(x_map, w_map, p, cluster_tiles, stream);
    }
  });
  check_launch("wgmma_gemm_kernel");
}

}  // namespace moeq::cuda
