// The decode GEMM: y = x W^T + s (x A^T) B^T when each expert has a few rows. Such a
// call is bound by streaming the 4-bit weights, so nothing goes through shared
// memory: each warp owns one 16-row tile and 32 output columns, reads its weight
// words straight into mma B fragments and keeps several 32-deep chunks of loads in
// flight. Serves W stored [E, N, K] (blocks along the reduced K) with 16-bit
// activations in 16-byte aligned rows; other calls take the row-tiled kernel.
#pragma once

#include "dequant_tile.cuh"
#include "expert_rows_gemm.cuh"
#include "mma_sync.cuh"

namespace moeq::cuda {

constexpr int kDecodeWarps = 4;
constexpr int kDecodeWarpCols = 32;  // four n8 tiles
constexpr int kDecodeCols = kDecodeWarps * kDecodeWarpCols;
constexpr int kDecodeThreads = 32 * kDecodeWarps;
// 32-deep chunks whose loads a warp issues before it consumes the first:
// 4 x 4 weight words per lane keep ~32 KB in flight per SM at 4 blocks per SM.
constexpr int kDecodeChunksInFlight = 4;

// Fragment order. Lane (g = lane / 4, t = lane % 4) reads word t of a column's
// 16-byte chunk: elements 8t .. 8t + 7 of the 32, two per byte (high nibble first).
// The dot product does not care in which order the 32 depth indices are summed, so
// mma step s (16 deep) takes bytes 2s and 2s + 1 of that word as its B registers
// b0 and b1, which the mma pairs with the A registers holding depth 2t, 2t + 1 and
// 2t + 8, 2t + 9 of its step; A follows the same order by reading elements
// 8t .. 8t + 7 of each x row as one 16-byte vector: 32-bit words 2s and 2s + 1.
__device__ __forceinline__ uint32_t vector_word(const uint4& vector, int index) {
  return index == 0 ? vector.x : index == 1 ? vector.y : index == 2 ? vector.z : vector.w;
}

template <class Activation, bool kLora>
__global__ void __launch_bounds__(kDecodeThreads) decode_gemm_kernel(const RowsGemmParams p) {
  using Element = typename OperandOf<Activation>::Element;
  static_assert(OperandOf<Activation>::kTerms == 1, "16-bit activations only");
  __shared__ CodeTable table;

  int32_t expert;
  int64_t row0, row_end;
  if (!find_row_tile(p.schedule, blockIdx.x, kDecodeRowTile, &expert, &row0, &row_end)) return;
  table.load(p.weight.format);
  __syncthreads();

  const int lane = threadIdx.x % 32;
  const int g = lane / 4;
  const int t = lane % 4;
  const int64_t warp_col0 =
      static_cast<int64_t>(blockIdx.y) * kDecodeCols + threadIdx.x / 32 * kDecodeWarpCols;
  const QuantWeightView& w = p.weight;  // [E, N, K]: dim1 = N, dim2 = K = depth

  // This lane's weight column in each n8 tile, and its x rows g and g + 8.
  int64_t column_flat[4];
  bool column_valid[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t col = warp_col0 + 8 * j + g;
    column_valid[j] = col < w.dim1;
    column_flat[j] = (expert * w.dim1 + (column_valid[j] ? col : 0)) * w.dim2;
  }
  const Activation* x_row[2];
  bool row_valid[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t row = row0 + g + 8 * h;
    row_valid[h] = row < row_end;
    x_row[h] = static_cast<const Activation*>(p.rows.data) + (row_valid[h] ? row : row0) * p.rows.ld + 8 * t;
  }

  float acc[4][4] = {};
  const int64_t chunks = p.depth / kChunkElements;
  for (int64_t chunk0 = 0; chunk0 < chunks; chunk0 += kDecodeChunksInFlight) {
    uint32_t word[kDecodeChunksInFlight][4];
    float absmax[kDecodeChunksInFlight][4];
    uint4 x_vector[kDecodeChunksInFlight][2];
#pragma unroll
    for (int u = 0; u < kDecodeChunksInFlight; ++u) {
      const bool present = chunk0 + u < chunks;
      const int64_t depth0 = (chunk0 + u) * kChunkElements;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t flat = column_flat[j] + depth0;
        const bool load = present && column_valid[j];
        word[u][j] = load ? __ldg(reinterpret_cast<const uint32_t*>(w.packed + flat / 2) + t) : 0u;
        absmax[u][j] = load ? block_absmax(w, flat >> w.blocksize_log2) : 0.0f;
      }
#pragma unroll
      for (int h = 0; h < 2; ++h)
        x_vector[u][h] = present && row_valid[h]
                             ? __ldg(reinterpret_cast<const uint4*>(x_row[h] + depth0))
                             : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < kDecodeChunksInFlight; ++u)
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        const uint32_t a[4] = {vector_word(x_vector[u][0], 2 * s), vector_word(x_vector[u][1], 2 * s),
                               vector_word(x_vector[u][0], 2 * s + 1), vector_word(x_vector[u][1], 2 * s + 1)};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          uint32_t b[2];
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const uint32_t byte = (word[u][j] >> (8 * (2 * s + r))) & 0xffu;
            b[r] = round_pair<Element>(table.value[byte >> 4] * absmax[u][j],
                                       table.value[byte & 15u] * absmax[u][j]);
          }
          mma_m16n8k16<Element>(acc[j], a, b);
        }
      }
  }

  // Accumulator (j, q): row g + 8 (q / 2), column 8j + 2t + q % 2 of the warp's tile.
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t row = row0 + g + 8 * (q / 2);
      const int64_t col = warp_col0 + 8 * j + 2 * t + q % 2;
      if (row >= row_end || col >= p.cols) continue;
      float value = acc[j][q];
      if constexpr (kLora) {
        // + s (x A^T)[row, :] . B[expert, col, :], in float32: r products per output.
        float lora = 0.0f;
        for (int64_t k = 0; k < p.rank; ++k)
          lora += load_as_float(p.lora_rows.data, p.lora_rows.type,
                                row * p.lora_rows.index_stride + k * p.lora_rows.depth_stride) *
                  load_as_float(p.lora_weight.data, p.lora_weight.type,
                                expert * p.lora_weight.expert_stride + col * p.lora_weight.index_stride +
                                    k * p.lora_weight.depth_stride);
        value += p.lora_scale * lora;
      }
      p.out.store(0, row, col, value);
    }
}

}  // namespace moeq::cuda
