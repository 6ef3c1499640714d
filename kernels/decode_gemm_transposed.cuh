// The decode GEMM for weights stored [E, K, N] (gpt-oss: blocks along the output
// features), computed transposed like decode_gemm.cuh: y^T = W^T x^T with the
// output features on mma's M side and a tile's token rows on n8. The packed bytes
// run along the features, so a lane reads 8 bytes (16 features) of each of the
// four depth rows its mma fragments need (k = 2t, 2t + 1, 2t + 8, 2t + 9 of each
// k16 step): byte i of those rows gives m16 tile i both its rows, the high nibble
// (feature 2i) for row g and the low one (feature 2i + 1) for row g + 8. The
// features' order inside a tile is free (the epilogue maps it back), the depth
// order is mma's own, so x's B fragments are plain 32-bit reads.
#pragma once

#include "decode_gemm.cuh"

namespace moeq::cuda {

constexpr int kDecodeTransposedWarpCols = 128;  // 8 lanes (g) x 16 features
constexpr int kDecodeTransposedCols = kDecodeWarps * kDecodeTransposedWarpCols;
// k16 steps whose loads a warp issues before it consumes the first: 4 x 4 8-byte
// weight reads per lane, 4 KB per warp, ~48 KB per SM at 3 blocks (the 168-register
// bound; at 128 the loads spilled beside the two n8 tiles' 64 accumulators).
constexpr int kDecodeTransposedStepsInFlight = 4;

// Blocks per SM of the one-row-group kernel: at 5, ptxas spills 3-5x more (sm_90a).
constexpr int kDecodeTransposedOneGroupBlocks = 4;

namespace decode_detail {

// One k16 step of loads for one lane: its 16 features in depth rows 2t, 2t + 1,
// 2t + 8, 2t + 9 (slot m: 2t + m % 2 + 8 (m / 2)) with their chunk's absmax, and
// the B registers of kRowGroups token rows.
template <int kRowGroups>
struct TransposedStepLoads {
  uint2 weight[4];
  float absmax[4];
  uint32_t x[kRowGroups][2];
};

// x[row][depth], x[row][depth + 1] as one B register, zeros at and past `depth_end`
// (never read: past K the next row's values could be anything).
template <class Activation>
__device__ __forceinline__ uint32_t x_pair(const Activation* row, int64_t depth, int64_t depth_end) {
  const unsigned short* elements = reinterpret_cast<const unsigned short*>(row);
  if (depth + 1 < depth_end) return __ldg(reinterpret_cast<const uint32_t*>(elements + depth));
  if (depth < depth_end) return __ldg(elements + depth);
  return 0u;
}

// (code[high nibble], code[low nibble]) of byte `byte` of `v`: feature 2i's and
// 2i + 1's code values, one PairTable load for both.
__device__ __forceinline__ float2 code_pair(const uint2& v, int byte, const PairTable& table, uint32_t lane_bits) {
  return table_pair(byte < 4 ? v.x : v.y, byte % 4, table, lane_bits);
}

template <class Activation, bool kLora, bool kNested, int kRowGroups>
__device__ __forceinline__ void decode_transposed_tile(const RowsGemmParams& p, const SplitPartials& split,
                                                       const PairTable& table, int32_t expert, int64_t row0,
                                                       int64_t row_end) {
  using Element = typename OperandOf<Activation>::Element;
  const int lane = threadIdx.x % 32;
  const int g = lane / 4;
  const int t = lane % 4;
  const uint32_t lane_bits = pair_lane_bits();
  const QuantWeightView& w = p.weight;  // [E, K, N]: dim1 = K = depth, dim2 = N
  // This lane's 16 features: m16 tile i holds feature lane_col0 + 2i (row g) and
  // lane_col0 + 2i + 1 (row g + 8). N is whole blocks of >= 32, so the 16 are all
  // inside or all outside, and in one absmax block.
  const int64_t lane_col0 = static_cast<int64_t>(blockIdx.y) * kDecodeTransposedCols +
                            threadIdx.x / 32 * kDecodeTransposedWarpCols + 16 * g;
  const bool col_valid = lane_col0 < w.dim2;
  const Activation* x_row[kRowGroups];
  bool row_valid[kRowGroups];
  // Inline rather than shared with decode_tile: a shared helper gave this kernel
  // extra spills in its main loop (ptxas, LoRA variant).
#pragma unroll
  for (int group = 0; group < kRowGroups; ++group) {
    const int64_t row = row0 + g + 8 * group;
    row_valid[group] = row < row_end;
    x_row[group] = static_cast<const Activation*>(p.rows.data) + (row_valid[group] ? row : row0) * p.rows.ld;
  }

  float acc[8][kRowGroups][4] = {};  // [m16 tile][n8 tile][fragment]
  // Depth [split_depth * blockIdx.z, + split_depth) (a multiple of 16), as decode_tile.
  const int64_t depth_begin = blockIdx.z * split.split_depth;
  const int64_t depth_end = std::min(p.depth, depth_begin + split.split_depth);
  const int64_t steps = (depth_end + 15) / 16;
  // With LoRA and two row groups, four steps in flight spilled in the loop (the
  // LoRA term's state lives across it): three there.
  constexpr int kInFlight = kLora && kRowGroups == 2 ? 3 : kDecodeTransposedStepsInFlight;
  for (int64_t step0 = depth_begin / 16; step0 < steps; step0 += kInFlight) {
    TransposedStepLoads<kRowGroups> loads[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int64_t k0 = (step0 + u) * 16;
#pragma unroll
      for (int m = 0; m < 4; ++m) {
        // Without branches: an absent depth or feature reads depth 0 / feature 0 of the
        // expert, with absmax 0 (finite codes times 0 are zeros).
        const int64_t depth = k0 + 2 * t + m % 2 + 8 * (m / 2);
        const bool load = col_valid && step0 + u < steps && depth < p.depth;
        const int64_t flat = (expert * w.dim1 + (load ? depth : 0)) * w.dim2 + (load ? lane_col0 : 0);
        loads[u].weight[m] = __ldg(reinterpret_cast<const uint2*>(w.packed + flat / 2));
        const float absmax = decode_absmax<kNested>(w, flat >> w.blocksize_log2);
        loads[u].absmax[m] = load ? absmax : 0.0f;
      }
#pragma unroll
      for (int group = 0; group < kRowGroups; ++group)
#pragma unroll
        for (int half = 0; half < 2; ++half)
          loads[u].x[group][half] = row_valid[group] && step0 + u < steps
                                        ? x_pair(x_row[group], k0 + 2 * t + 8 * half, p.depth)
                                        : 0u;
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const TransposedStepLoads<kRowGroups>& l = loads[u];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        // Registers: (row g, k 2t..2t+1), (row g + 8, same k), (row g, k 2t+8..), (row g + 8, ..).
        uint32_t a[4];
#pragma unroll
        for (int pair = 0; pair < 2; ++pair) {  // depth slots 2 pair, 2 pair + 1: registers 2 pair, 2 pair + 1
          const float2 first = code_pair(l.weight[2 * pair], i, table, lane_bits);
          const float2 second = code_pair(l.weight[2 * pair + 1], i, table, lane_bits);
          a[2 * pair] = round_pair<Element>(first.x * l.absmax[2 * pair], second.x * l.absmax[2 * pair + 1]);
          a[2 * pair + 1] = round_pair<Element>(first.y * l.absmax[2 * pair], second.y * l.absmax[2 * pair + 1]);
        }
#pragma unroll
        for (int group = 0; group < kRowGroups; ++group) mma_m16n8k16<Element>(acc[i][group], a, l.x[group]);
      }
    }
  }

  // m16 tile i holds this lane's features 2i (its row g) and 2i + 1 (row g + 8).
  finish_tile<Element, kLora>(p, split, expert, row0, row_end, row_valid,
                              [&](int i, int half) { return lane_col0 + 2 * i + half; }, acc);
}

}  // namespace decode_detail

// kMaxRowGroups: decode_block's row groups (1 where the launch expects tiles of at most
// 8 rows: more blocks per SM).
template <class Activation, bool kLora, int kMaxRowGroups>
__global__ void __launch_bounds__(kDecodeThreads, kMaxRowGroups == 1 ? kDecodeTransposedOneGroupBlocks : 3)
    decode_gemm_transposed_kernel(const RowsGemmParams p, const SplitPartials split, const ChainEntry entry) {
  static_assert(OperandOf<Activation>::kTerms == 1, "16-bit activations only");
  enter_chained_kernel(entry);
  // Constant shared addresses: one LDS per lookup at [offset + constant].
  __shared__ float code[16];
  __shared__ decode_detail::PairTable table;
  decode_detail::decode_block<kMaxRowGroups>(p, code, table, [&](auto groups, int32_t expert, int64_t row0,
                                                                 int64_t row_end) {
    constexpr int kRowGroups = decltype(groups)::value;
    if (p.weight.nested)
      decode_detail::decode_transposed_tile<Activation, kLora, true, kRowGroups>(p, split, table, expert, row0,
                                                                                 row_end);
    else
      decode_detail::decode_transposed_tile<Activation, kLora, false, kRowGroups>(p, split, table, expert, row0,
                                                                                  row_end);
  });
}

}  // namespace moeq::cuda
