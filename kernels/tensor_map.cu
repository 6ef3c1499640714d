// Encoding of TMA descriptors through cuTensorMapEncodeTiled, looked up once.
#include "cuda_check.cuh"
#include "tensor_map.cuh"

#include <cudaTypedefs.h>

#include <mutex>
#include <string>

namespace moeq::cuda {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 encode_function() {
  static PFN_cuTensorMapEncodeTiled_v12000 function = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* pointer = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &pointer, 12000, cudaEnableDefault,
                                         &found) == cudaSuccess &&
        found == cudaDriverEntryPointSuccess)
      function = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(pointer);
    else
      cudaGetLastError();
  });
  return function;
}

uint32_t swizzle_bytes(CUtensorMapSwizzle swizzle) {
  switch (swizzle) {
    case CU_TENSOR_MAP_SWIZZLE_32B: return 32;
    case CU_TENSOR_MAP_SWIZZLE_64B: return 64;
    case CU_TENSOR_MAP_SWIZZLE_128B: return 128;
    default: return 0;
  }
}

}  // namespace

bool tensor_map_fits(const TensorMapShape& shape) {
  constexpr uint64_t kDimLimit = uint64_t{1} << 32;
  const uint32_t box_bytes = shape.box_cols * shape.element_bytes;
  const uint32_t span = swizzle_bytes(shape.swizzle);
  return encode_function() != nullptr && reinterpret_cast<uintptr_t>(shape.base) % 16 == 0 &&
         shape.row_stride_bytes % 16 == 0 && shape.row_stride_bytes < (uint64_t{1} << 40) &&
         shape.rows > 0 && shape.cols > 0 && shape.rows < kDimLimit && shape.cols < kDimLimit &&
         box_bytes % 16 == 0 && shape.box_rows <= 256 && shape.box_cols <= 256 &&
         (span == 0 || box_bytes <= span);
}

CUtensorMap make_tensor_map(const TensorMapShape& shape) {
  CUtensorMap map{};
  const cuuint64_t dims[2] = {shape.cols, shape.rows};
  const cuuint64_t strides[1] = {shape.row_stride_bytes};
  const cuuint32_t box[2] = {shape.box_cols, shape.box_rows};
  const cuuint32_t element_strides[2] = {1, 1};
  const PFN_cuTensorMapEncodeTiled_v12000 encode = encode_function();
  const CUresult result =
      encode == nullptr ? CUDA_ERROR_NOT_SUPPORTED
                        : encode(&map, shape.type, 2, const_cast<void*>(shape.base), dims, strides, box,
                                 element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, shape.swizzle,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS)
    fail(MOEQ_ERR_CUDA, "cuTensorMapEncodeTiled refused a [" + std::to_string(shape.rows) + ", " +
                            std::to_string(shape.cols) + "] matrix with " +
                            std::to_string(shape.row_stride_bytes) + "-byte rows in [" +
                            std::to_string(shape.box_rows) + ", " + std::to_string(shape.box_cols) +
                            "] boxes (CUresult " + std::to_string(static_cast<int>(result)) + ")");
  return map;
}

}  // namespace moeq::cuda
