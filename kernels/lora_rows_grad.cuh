// The LoRA gradients for 16-bit activation rows at memory bandwidth:
//   G_e[d, j] = scale * sum over rows m of expert e of W[m, d] S[m, j]
// with W the wide activation rows (x for dA, dY for dB) and S the rank-r
// intermediate (g = dY B for dA, xa = x A^T for dB); dA_e = G_e^T, dB_e = G_e.
//
// The sum runs over rows, which mma fragments hold as scattered pairs, so both
// operands go through shared memory: a block owns one expert and 128 columns of W
// (a warp 16 of them, the mma M dim) and walks the expert's rows in order, 32 at a
// time, W copied in by cp.async kGradStages - 1 chunks ahead and S (r columns,
// converted to the operand type) one chunk behind that; ldmatrix.trans turns the
// [row][column] tiles into fragments. No atomics: the same bits on every run, and
// an expert without rows writes zeros.
#pragma once

#include "chained_launch.cuh"
#include "dequant_pipeline.cuh"
#include "lora_grad.cuh"
#include "lora_rows_project.cuh"
#include "row_vectors.cuh"

#include <cstdint>

namespace moeq::cuda {

constexpr int kGradWarps = 8;
constexpr int kGradThreads = 32 * kGradWarps;
constexpr int kGradWidth = 16 * kGradWarps;  // columns of W per block
constexpr int kGradChunkRows = 32;             // rows per pipeline step: two mma k-steps
constexpr int kGradStages = 4;                 // 3 chunks of W in flight per block

template <class Element, int RankPad>
struct SkinnyGradSmem {
  Element wide[kGradStages][kGradChunkRows][kGradWidth + kSmemPadElements];
  Element skinny[kGradStages][kGradChunkRows][RankPad + kSmemPadElements];
};

// This thread's share of S's chunk: row (threadIdx.x + kGradThreads i) / RankPad,
// column (threadIdx.x % RankPad), widened to float32; zero past the expert's rows and the rank.
template <int RankPad>
struct GradSkinnyShare {
  static constexpr int kPerThread = kGradChunkRows * RankPad / kGradThreads;
  static constexpr int kRowsPerPass = kGradThreads / RankPad;
  float value[kPerThread];

  template <class Stored>
  __device__ __forceinline__ void load_typed(const StridedView& view, int64_t first_row, int64_t row_end,
                                             int64_t rank) {
    const int column = threadIdx.x % RankPad;
    const int64_t row = first_row + threadIdx.x / RankPad;
    const Stored* base = static_cast<const Stored*>(view.data) + row * view.index_stride +
                         column * view.depth_stride;
    Stored raw[kPerThread];
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
      if (row + kRowsPerPass * i < row_end && column < rank)
        raw[i] = __ldg(base + kRowsPerPass * i * view.index_stride);
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
      value[i] = row + kRowsPerPass * i < row_end && column < rank ? to_float32(raw[i]) : 0.0f;
  }

  __device__ __forceinline__ void load(const StridedView& view, int64_t first_row, int64_t row_end,
                                       int64_t rank) {
    switch (view.type) {
      case ScalarType::Float16: load_typed<__half>(view, first_row, row_end, rank); break;
      case ScalarType::BFloat16: load_typed<__nv_bfloat16>(view, first_row, row_end, rank); break;
      case ScalarType::Float32: load_typed<float>(view, first_row, row_end, rank); break;
    }
  }

  // Rounded to the operand type before the product, as lora_grad_kernel's loaders do.
  template <class Element>
  __device__ __forceinline__ void store(Element (*stage)[RankPad + kSmemPadElements]) const {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
      stage[threadIdx.x / RankPad + kRowsPerPass * i][threadIdx.x % RankPad] = round_to<Element>(value[i]);
  }
};

// kWideLeft: W is LoraGradParams' left operand (dB: out (expert, d, j)); else its
// right one (dA: out (expert, j, d)).
template <class Activation, int RankPad, bool kWideLeft>
__global__ void __launch_bounds__(kGradThreads, RankPad <= 32 ? 4 : 2) lora_rows_grad_kernel(const LoraGradParams p) {
  enter_chained_kernel();
  using Element = typename OperandOf<Activation>::Element;
  using Smem = SkinnyGradSmem<Element, RankPad>;
  constexpr int kRankTiles = RankPad / 8;
  extern __shared__ uint4 smem_words[];
  Smem& smem = *reinterpret_cast<Smem*>(smem_words);

  const RowsView wide = kWideLeft ? p.left_rows : p.right_rows;
  const StridedView skinny = kWideLeft ? p.right_strided : p.left_strided;
  const int64_t width = kWideLeft ? p.out_rows : p.out_cols;
  const int64_t rank = kWideLeft ? p.out_cols : p.out_rows;
  const int32_t expert = blockIdx.y;
  const int64_t d0 = static_cast<int64_t>(blockIdx.x) * kGradWidth;
  const int64_t row_begin = p.schedule.row_begin[expert];
  const int64_t row_end = p.schedule.row_end[expert];
  const int64_t chunks = (row_end - row_begin + kGradChunkRows - 1) / kGradChunkRows;
  const uint16_t* w = static_cast<const uint16_t*>(wide.data);

  // The chunk's 32 x 128 tile of W: 16-byte copies, zeros past the rows and the
  // width (plain stores, made visible by the barrier before the chunk is used).
  auto issue_wide = [&](int64_t chunk) {
    if (chunk >= chunks) return;
    constexpr int kVectorsPerRow = kGradWidth / 8;
#pragma unroll
    for (int i = 0; i < kGradChunkRows * kVectorsPerRow / kGradThreads; ++i) {
      const int index = threadIdx.x + kGradThreads * i;
      const int r = index / kVectorsPerRow;
      const int c = index % kVectorsPerRow * 8;
      const int64_t row = row_begin + chunk * kGradChunkRows + r;
      const int64_t col = d0 + c;
      Element* destination = &smem.wide[chunk % kGradStages][r][c];
      if (row < row_end && col + 8 <= width) cp_async_16(destination, w + row * wide.ld + col);
      else *reinterpret_cast<uint4*>(destination) =
               load_row_vector(w + (row < row_end ? row * wide.ld : 0), row < row_end, col, width);
    }
  };

  float acc[kRankTiles][4];
#pragma unroll
  for (int n = 0; n < kRankTiles; ++n)
#pragma unroll
    for (int q = 0; q < 4; ++q) acc[n][q] = 0.0f;

  const int lane = threadIdx.x % 32;
  const int matrix = lane / 8;
  const int matrix_row = lane % 8;
  const int warp_col = 16 * (threadIdx.x / 32);
  // acc += W[chunk rows, warp's 16 columns]^T S[chunk rows, :] (ldmatrix.trans of
  // the [row][column] tiles: A is (column d, row m), B is (row m, rank j)).
  auto multiply = [&](int stage) {
#pragma unroll
    for (int t0 = 0; t0 < kGradChunkRows; t0 += 16) {
      uint32_t a[4];
      ldmatrix_x4<true>(a, &smem.wide[stage][t0 + matrix_row + (matrix / 2) * 8][warp_col + (matrix % 2) * 8]);
#pragma unroll
      for (int pair = 0; pair < kRankTiles / 2; ++pair) {
        uint32_t b[4];
        ldmatrix_x4<true>(b, &smem.skinny[stage][t0 + matrix_row + (matrix % 2) * 8][16 * pair + (matrix / 2) * 8]);
        const uint32_t b_low[2] = {b[0], b[1]};
        const uint32_t b_high[2] = {b[2], b[3]};
        mma_m16n8k16<Element>(acc[2 * pair], a, b_low);
        mma_m16n8k16<Element>(acc[2 * pair + 1], a, b_high);
      }
    }
  };

  constexpr int kAhead = kGradStages - 1;
  GradSkinnyShare<RankPad> share;
#pragma unroll
  for (int s = 0; s < kAhead; ++s) {
    issue_wide(s);
    cp_async_commit_group();
  }
#pragma unroll
  for (int s = 0; s < kAhead - 1; ++s) {
    share.load(skinny, row_begin + s * kGradChunkRows, row_end, rank);
    share.store(smem.skinny[s]);
  }
  share.load(skinny, row_begin + (kAhead - 1) * kGradChunkRows, row_end, rank);

  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    cp_async_wait_group<kAhead - 1>();
    __syncthreads();  // the chunk's copies visible; everyone done with chunk - 1's stage
    issue_wide(chunk + kAhead);
    cp_async_commit_group();
    share.store(smem.skinny[(chunk + kAhead - 1) % kGradStages]);
    share.load(skinny, row_begin + (chunk + kAhead) * kGradChunkRows, row_end, rank);
    multiply(static_cast<int>(chunk % kGradStages));
  }

  const int g = lane / 4;
  const int t = lane % 4;
#pragma unroll
  for (int n = 0; n < kRankTiles; ++n)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t d = d0 + warp_col + g + 8 * (q / 2);
      const int64_t j = 8 * n + 2 * t + q % 2;
      if (d >= width || j >= rank) continue;
      const float value = p.scale * acc[n][q];
      if constexpr (kWideLeft) p.out.store(expert, d, j, value);
      else p.out.store(expert, j, d, value);
    }
}

// 16-bit activation rows in whole 16-byte vectors and a rank the kernel templates.
inline bool lora_rows_grad_serves(ScalarType activation, bool left_strided, const LoraGradParams& params) {
  const RowsView& wide = left_strided ? params.right_rows : params.left_rows;
  const int64_t rank = left_strided ? params.out_rows : params.out_cols;
  return activation != ScalarType::Float32 && wide.vector_aligned && rank >= 1 && rank <= kSkinnyMaxRank;
}

template <class Activation, int RankPad, bool kWideLeft>
void launch_lora_rows_grad_for(const LoraGradParams& params, int64_t width, cudaStream_t stream) {
  using Smem = SkinnyGradSmem<typename OperandOf<Activation>::Element, RankPad>;
  constexpr auto kernel = lora_rows_grad_kernel<Activation, RankPad, kWideLeft>;
  allow_dynamic_smem<kernel>(sizeof(Smem));
  const dim3 grid(static_cast<unsigned>((width + kGradWidth - 1) / kGradWidth),
                  static_cast<unsigned>(params.schedule.experts));
  launch_chained(kernel, grid, kGradThreads, sizeof(Smem), stream, "lora_rows_grad_kernel", params);
}

template <class Activation, bool kWideLeft>
void launch_lora_rows_grad(const LoraGradParams& params, cudaStream_t stream) {
  const int64_t width = kWideLeft ? params.out_rows : params.out_cols;
  const int64_t rank = kWideLeft ? params.out_cols : params.out_rows;
  if (width == 0 || params.schedule.experts == 0) return;
  if (rank <= 16) launch_lora_rows_grad_for<Activation, 16, kWideLeft>(params, width, stream);
  else if (rank <= 32) launch_lora_rows_grad_for<Activation, 32, kWideLeft>(params, width, stream);
  else launch_lora_rows_grad_for<Activation, 64, kWideLeft>(params, width, stream);
}

}  // namespace moeq::cuda
