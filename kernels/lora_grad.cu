// Instantiations of the LoRA gradient reductions (dA: strided left operand,
// dB: strided right operand) for every activation dtype: the bandwidth kernel
// (lora_rows_grad.cuh) where it serves, else the tiled reduction.
#include "expert_gemm_launch.cuh"
#include "lora_rows_grad.cuh"

#include <type_traits>

namespace moeq::cuda {
namespace {

template <class Activation, bool kLeftStrided>
void launch_for(const LoraGradParams& params, cudaStream_t stream) {
  using Shape = LoraGradShape;
  const int64_t row_tiles = (params.out_rows + Shape::kRows - 1) / Shape::kRows;
  const int64_t col_tiles = (params.out_cols + Shape::kCols - 1) / Shape::kCols;
  if (row_tiles == 0 || col_tiles == 0) return;
  launch_chained(lora_grad_kernel<Activation, Shape, kLeftStrided, !kLeftStrided>,
                 dim3(static_cast<unsigned>(params.schedule.experts), static_cast<unsigned>(row_tiles),
                      static_cast<unsigned>(col_tiles)),
                 Shape::kThreads, 0, stream, "lora_grad_kernel", params);
}

}  // namespace

void launch_lora_grad(ScalarType activation, bool left_strided, const LoraGradParams& params,
                      cudaStream_t stream) {
  dispatch_scalar(activation, [&](auto tag) {
    using Activation = decltype(tag);
    if constexpr (!std::is_same_v<Activation, float>) {
      if (lora_rows_grad_serves(activation, left_strided, params)) {
        if (left_strided) launch_lora_rows_grad<Activation, false>(params, stream);
        else launch_lora_rows_grad<Activation, true>(params, stream);
        return;
      }
    }
    if (left_strided) launch_for<Activation, true>(params, stream);
    else launch_for<Activation, false>(params, stream);
  });
}

}  // namespace moeq::cuda
