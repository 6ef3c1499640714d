// Instantiations of the LoRA gradient reductions (dA: strided left operand,
// dB: strided right operand) for every activation dtype.
#include "expert_gemm_launch.cuh"

namespace moeq::cuda {
namespace {

template <class Activation, bool kLeftStrided>
void launch_for(const LoraGradParams& params, cudaStream_t stream) {
  using Shape = LoraGradShape;
  const int64_t row_tiles = (params.out_rows + Shape::kRows - 1) / Shape::kRows;
  const int64_t col_tiles = (params.out_cols + Shape::kCols - 1) / Shape::kCols;
  if (row_tiles == 0 || col_tiles == 0) return;
  lora_grad_kernel<Activation, Shape, kLeftStrided, !kLeftStrided>
      <<<dim3(static_cast<unsigned>(params.schedule.experts), static_cast<unsigned>(row_tiles),
              static_cast<unsigned>(col_tiles)),
         Shape::kThreads, 0, stream>>>(params);
  check_launch("lora_grad_kernel");
}

}  // namespace

void launch_lora_grad(ScalarType activation, bool left_strided, const LoraGradParams& params,
                      cudaStream_t stream) {
  dispatch_scalar(activation, [&](auto tag) {
    using Activation = decltype(tag);
    if (left_strided) launch_for<Activation, true>(params, stream);
    else launch_for<Activation, false>(params, stream);
  });
}

}  // namespace moeq::cuda
