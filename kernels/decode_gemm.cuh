// The decode GEMM: y = x W^T + s (x A^T) B^T when each expert has a few rows. Such a
// call reads each 4-bit weight once for a few products, so nothing goes through shared
// memory but the code table (by byte: PairTable). It is computed transposed, y^T = W x^T: the
// weight columns are the mma's M side (two m16 tiles, 32 columns per warp) and the
// tile's token rows its n8 side, so the usual tile of at most 8 rows fills the n8
// tile; up to 16 rows take a second one. A grid too small for the GPU splits the
// depth over grid z (split_partials.cuh). On the H200 these kernels are bound by the
// latency of each warp's chain of load, lookup, scale, conversion and mma, with too
// few warps to hide it (ncu: no eligible warp in 53% of cycles at 16 warps per SM);
// more loads in flight at fewer blocks per SM measured slower (registers twice, a
// cp.async ring once: bench/RESULTS.md, tenth pass). Hence the [E, K, N] kernel's build
// for one n8 row group, which fits 4 blocks per SM instead of 3. The [E, N, K] kernel
// built so at 6 blocks per SM measured 40% slower (eleventh pass), and not for want of
// L1: with tables of half the size it was still 11% slower (twelfth pass). Serves W
// stored [E, N, K] (blocks along the reduced K, K a multiple of 32) with 16-bit
// activations in 16-byte aligned rows; other calls take the row-tiled kernel.
#pragma once

#include "chained_launch.cuh"
#include "dequant_tile.cuh"
#include "expert_rows_gemm.cuh"
#include "mma_sync.cuh"
#include "split_partials.cuh"
#include "vector_io.cuh"

#include <algorithm>
#include <type_traits>

namespace moeq::cuda {

constexpr int kDecodeWarps = 4;
constexpr int kDecodeWarpCols = 32;  // two m16 tiles
constexpr int kDecodeCols = kDecodeWarps * kDecodeWarpCols;
constexpr int kDecodeThreads = 32 * kDecodeWarps;
// One macro step is 128 deep: each of a quad's four lanes streams 32 consecutive
// depth values (16 bytes) of its four columns.
constexpr int kDecodeMacroDepth = 128;
// Macro steps whose loads a warp issues before it consumes the first: 2 x 4 16-byte
// weight vectors per lane keep ~32 KB of weights in flight per SM at 4 blocks.
constexpr int kDecodeMacroInFlight = 2;

namespace decode_detail {

// Depth order. Lane (g = lane / 4, t = lane % 4) holds depth 32t .. 32t + 31 of a
// macro step. The dot product does not care in which order depth is summed, so k16
// step s of the macro step gives lane t the depths 32t + 4s .. 32t + 4s + 3 in the
// places mma.sync calls k = 2t, 2t + 1 (the first pair) and 2t + 8, 2t + 9 (the
// second): for a weight column, the two nibbles of bytes 2s and 2s + 1 of the lane's
// 16-byte vector; for a token row, 32-bit words 2s and 2s + 1 of its 64-byte slice.

// One macro step of loads for one lane: four weight columns (m16 tile i, column g
// or g + 8: index 2i + h) with their chunk's absmax, and kRowGroups token rows.
template <int kRowGroups>
struct MacroLoads {
  uint4 weight[4];
  float absmax[4];
  uint4 x[kRowGroups][4];
};

// The code table by packed byte: entry b holds (code[b >> 4], code[b & 15]), the
// earlier depth first, so one 8-byte load serves both values of a byte (a lookup per
// value took a shift, a mask and a load each: the decode GEMM is bound by instruction
// issue). 16 copies side by side: lane l reads copy l % 16, so the 16 lanes of each
// half-warp hit distinct bank pairs whatever bytes they hold. 32 KB per block.
struct PairTable {
  float2 pair[256][16];

  // After `code` is filled and visible; followed by a __syncthreads() of the caller.
  __device__ __forceinline__ void fill(const float (&code)[16]) {
    for (int index = threadIdx.x; index < 256 * 16; index += blockDim.x)
      pair[index / 16][index % 16] = make_float2(code[index / 256], code[index / 16 % 16]);
  }
};

// This lane's copy in a PairTable: byte offset (lane % 16) * 8, below the entries' b * 128.
__device__ __forceinline__ uint32_t pair_lane_bits() { return threadIdx.x % 16 * 8; }

// (code[high nibble], code[low nibble]) of byte `byte` (0..3) of `word`: the byte
// lands at bits 7..14 (its entry's offset) by one shift, and one and-or adds the
// lane's copy.
__device__ __forceinline__ float2 table_pair(uint32_t word, int byte, const PairTable& table, uint32_t lane_bits) {
  const int shift = 8 * byte - 7;
  const uint32_t offset = ((shift >= 0 ? word >> shift : word << -shift) & 0x7f80u) | lane_bits;
  return *reinterpret_cast<const float2*>(reinterpret_cast<const uint8_t*>(table.pair) + offset);
}

// The bf16/f16 pair (code[high nibble] * absmax, code[low nibble] * absmax) of byte
// `byte` (0..15) of a weight vector: the high nibble is the earlier depth, the low
// half of the register.
template <class Element>
__device__ __forceinline__ uint32_t weight_pair(const uint4& vector, int byte, float absmax, const PairTable& table,
                                                uint32_t lane_bits) {
  const float2 codes = table_pair(word_of(vector, byte / 4), byte % 4, table, lane_bits);
  return round_pair<Element>(codes.x * absmax, codes.y * absmax);
}

// The deferred-scale form (blocksize >= 64, decode_tile_deferred): the code table by
// packed byte as operand pairs, entry b = (code[b >> 4], code[b & 15]) rounded to the
// operand type with the earlier depth in the low half, so one 4-byte load is the mma
// register: no multiply and no conversion per value. 32 copies side by side (lane l
// reads copy l): a warp's 32 loads hit 32 banks. Entries are 128 bytes apart, as
// PairTable's, so the same shift finds them. 32 KB per block.
template <class Element>
struct OperandPairTable {
  uint32_t pair[256][32];

  __device__ __forceinline__ void fill(const float (&code)[16]) {
    for (int index = threadIdx.x; index < 256 * 32; index += blockDim.x)
      pair[index / 32][index % 32] = round_pair<Element>(code[index / 32 >> 4], code[index / 32 & 15]);
  }
};

// This lane's copy in an OperandPairTable: byte offset lane * 4, below the entries' b * 128.
__device__ __forceinline__ uint32_t operand_pair_lane_bits() { return threadIdx.x % 32 * 4; }

// The unscaled operand pair of byte `byte` (0..7) of an 8-byte weight piece.
template <class Element>
__device__ __forceinline__ uint32_t code_pair(const uint2& piece, int byte, const OperandPairTable<Element>& table,
                                              uint32_t lane_bits) {
  const uint32_t word = byte < 4 ? piece.x : piece.y;
  const int shift = 8 * (byte % 4) - 7;
  const uint32_t offset = ((shift >= 0 ? word >> shift : word << -shift) & 0x7f80u) | lane_bits;
  return *reinterpret_cast<const uint32_t*>(reinterpret_cast<const uint8_t*>(table.pair) + offset);
}

// LoRA's + s (x A^T) B^T in the decode kernels, through the same accumulators:
// rank steps of 16 in mma's own k order, A = B's rows for the tile's features and
// B = (s x A^T)^T, both rounded to the operand type (as the Hopper GEMM does).
// feature(i, half) is the weight feature of row g (half 0) or g + 8 of m16 tile i.
template <class Element, int kTiles, int kRowGroups, class Feature>
__device__ __forceinline__ void add_lora_rank_steps(const RowsGemmParams& p, int32_t expert, int64_t row0,
                                                    const bool (&row_valid)[kRowGroups], Feature feature,
                                                    float (&acc)[kTiles][kRowGroups][4]) {
  const int g = threadIdx.x % 32 / 4;
  const int t = threadIdx.x % 4;
  auto lora_b = [&](int64_t col, int64_t j) {
    if (col >= p.cols || j >= p.rank) return 0.0f;
    const StridedView& v = p.lora_weight;
    return load_as_float(v.data, v.type, expert * v.expert_stride + col * v.index_stride + j * v.depth_stride);
  };
  auto scaled_x_lora_a = [&](int group, int64_t j) {
    const int64_t row = row0 + g + 8 * group;
    if (!row_valid[group] || j >= p.rank) return 0.0f;
    return p.lora_scale *
           load_as_float(p.lora_rows.data, p.lora_rows.type, row * p.lora_rows.index_stride + j * p.lora_rows.depth_stride);
  };
  for (int64_t j0 = 0; j0 < p.rank; j0 += 16) {
    const int64_t j = j0 + 2 * t;
    uint32_t b[kRowGroups][2];
#pragma unroll
    for (int group = 0; group < kRowGroups; ++group) {
      b[group][0] = round_pair<Element>(scaled_x_lora_a(group, j), scaled_x_lora_a(group, j + 1));
      b[group][1] = round_pair<Element>(scaled_x_lora_a(group, j + 8), scaled_x_lora_a(group, j + 9));
    }
#pragma unroll
    for (int i = 0; i < kTiles; ++i) {
      const int64_t first = feature(i, 0), second = feature(i, 1);
      const uint32_t a[4] = {round_pair<Element>(lora_b(first, j), lora_b(first, j + 1)),
                             round_pair<Element>(lora_b(second, j), lora_b(second, j + 1)),
                             round_pair<Element>(lora_b(first, j + 8), lora_b(first, j + 9)),
                             round_pair<Element>(lora_b(second, j + 8), lora_b(second, j + 9))};
#pragma unroll
      for (int group = 0; group < kRowGroups; ++group) mma_m16n8k16<Element>(acc[i][group], a, b[group]);
    }
  }
}

// The end of a decode tile: LoRA's rank steps (with split 0 of the depth), then each
// accumulator (i, group, q), feature(i, q / 2) of token row 8 group + 2t + q % 2,
// into the output or, when the depth is split, split blockIdx.z's partial.
template <class Element, bool kLora, int kTiles, int kRowGroups, class Feature>
__device__ __forceinline__ void finish_tile(const RowsGemmParams& p, const SplitPartials& split, int32_t expert,
                                            int64_t row0, int64_t row_end, const bool (&row_valid)[kRowGroups],
                                            Feature feature, float (&acc)[kTiles][kRowGroups][4]) {
  // The LoRA rows and the outputs may be the chain predecessor's (ChainEntry).
  wait_for_chained_inputs();
  if constexpr (kLora) {
    if (blockIdx.z == 0) add_lora_rank_steps<Element>(p, expert, row0, row_valid, feature, acc);
  }
  const int t = threadIdx.x % 4;
#pragma unroll
  for (int i = 0; i < kTiles; ++i)
#pragma unroll
    for (int group = 0; group < kRowGroups; ++group)
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int64_t col = feature(i, q / 2);
        const int64_t row = row0 + 8 * group + 2 * t + q % 2;
        if (row < row_end && col < p.cols) {
          if (split.split()) split.at(blockIdx.z, row, col) = acc[i][group][q];
          else p.out.store(0, row, col, acc[i][group][q]);
        }
      }
}

// The body of both decode kernels: the block's row tile and the code table, then
// `tile` with one n8 group of token rows (a tile of at most 8 rows; row_end is the
// expert's end, so this is uniform per block) or two. A kernel built for one group
// (kMaxRowGroups 1: fewer registers, more warps per SM) takes a larger tile in two
// passes of 8 rows, each streaming the weights again.
// The code table (`table`: PairTable or OperandPairTable) is filled first, once.
template <int kMaxRowGroups, class Table, class Tile>
__device__ __forceinline__ void decode_block(const RowsGemmParams& p, float (&code)[16], Table& table, Tile tile) {
  static_assert(kMaxRowGroups == 1 || kMaxRowGroups == 2, "one or two n8 row groups");
  int32_t expert;
  int64_t row0, row_end;
  if (!find_row_tile(p.schedule, blockIdx.x, kDecodeRowTile, &expert, &row0, &row_end)) {
    wait_for_chained_inputs();  // no exit before it (ChainEntry)
    return;
  }
  if (threadIdx.x < 16) code[threadIdx.x] = code_value(p.weight.format, threadIdx.x);
  __syncthreads();
  table.fill(code);
  __syncthreads();
  if constexpr (kMaxRowGroups == 1) {
    // row_end is the expert's end: the tile holds at most kDecodeRowTile of its rows.
    const int64_t tile_end = std::min<int64_t>(row_end, row0 + kDecodeRowTile);
    for (int64_t first = row0; first < tile_end; first += 8)
      tile(std::integral_constant<int, 1>{}, expert, first, std::min<int64_t>(tile_end, first + 8));
  } else {
    if (row_end - row0 <= 8) tile(std::integral_constant<int, 1>{}, expert, row0, row_end);
    else tile(std::integral_constant<int, 2>{}, expert, row0, row_end);
  }
}

// absmax of block `block` (block_absmax with the nested decode chosen at compile time:
// a runtime branch per load took issue slots in the plain case too).
template <bool kNested>
__device__ __forceinline__ float decode_absmax(const QuantWeightView& w, int64_t block) {
  if constexpr (!kNested) return __ldg(w.absmax + block);
  const float scaled =
      __fmul_rn(__ldg(w.nested_code + __ldg(w.absmax_codes + block)), __ldg(w.nested_absmax + (block >> 8)));
  return __fadd_rn(scaled, __ldg(w.nested_offset));
}

// The tile's depth [split_depth * blockIdx.z, + split_depth) (SplitPartials; the LoRA
// term goes with split 0) as its end and the macro steps that cover it.
struct DecodeDepth {
  int64_t end, first_macro_step, macro_steps;

  __device__ __forceinline__ DecodeDepth(const RowsGemmParams& p, const SplitPartials& split) {
    const int64_t begin = blockIdx.z * split.split_depth;
    end = std::min(p.depth, begin + split.split_depth);
    first_macro_step = begin / kDecodeMacroDepth;
    macro_steps = (end + kDecodeMacroDepth - 1) / kDecodeMacroDepth;
  }
};

// What a lane of decode_tile / decode_tile_deferred works on: its warp's first weight
// column, its four columns (2i + h: m16 tile i, row g + 8h of it) as the flat element
// offset of their depth 0 (a column past N reads column 0's, with absmax 0: finite
// codes times 0 make zeros without a branch), and its token rows g + 8 group from
// element `row_offset` on (the row tile's first row past row_end).
template <class Activation, int kRowGroups>
struct DecodeLanes {
  int64_t warp_col0;
  int64_t column_flat[4];
  bool column_valid[4];
  const Activation* x_row[kRowGroups];
  bool row_valid[kRowGroups];

  __device__ __forceinline__ DecodeLanes(const RowsGemmParams& p, int32_t expert, int64_t row0, int64_t row_end,
                                         int row_offset) {
    const int g = threadIdx.x % 32 / 4;
    const QuantWeightView& w = p.weight;
    warp_col0 = static_cast<int64_t>(blockIdx.y) * kDecodeCols + threadIdx.x / 32 * kDecodeWarpCols;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int64_t col = warp_col0 + 16 * (c / 2) + 8 * (c % 2) + g;
      column_valid[c] = col < w.dim1;
      column_flat[c] = (expert * w.dim1 + (column_valid[c] ? col : 0)) * w.dim2;
    }
#pragma unroll
    for (int group = 0; group < kRowGroups; ++group) {
      const int64_t row = row0 + g + 8 * group;
      row_valid[group] = row < row_end;
      x_row[group] =
          static_cast<const Activation*>(p.rows.data) + (row_valid[group] ? row : row0) * p.rows.ld + row_offset;
    }
  }

  // finish_tile's feature(i, half): m16 tile i holds the warp's columns 16i + g (its
  // row g) and 16i + g + 8 (row g + 8).
  __device__ __forceinline__ int64_t feature(int i, int half) const {
    return warp_col0 + 16 * i + threadIdx.x % 32 / 4 + 8 * half;
  }
};

template <class Activation, bool kLora, bool kNested, int kRowGroups>
__device__ __forceinline__ void decode_tile(const RowsGemmParams& p, const SplitPartials& split,
                                            const PairTable& table, int32_t expert, int64_t row0,
                                            int64_t row_end) {
  using Element = typename OperandOf<Activation>::Element;
  const int t = threadIdx.x % 4;
  const uint32_t lane_bits = pair_lane_bits();
  const QuantWeightView& w = p.weight;  // [E, N, K]: dim1 = N, dim2 = K = depth
  // The lane's slice of a macro step is 32 t deep.
  const DecodeLanes<Activation, kRowGroups> lanes(p, expert, row0, row_end, 32 * t);

  float acc[2][kRowGroups][4] = {};  // [m16 tile][n8 tile][fragment]
  const DecodeDepth range(p, split);
  const int64_t depth_end = range.end, macro_steps = range.macro_steps;
  for (int64_t macro0 = range.first_macro_step; macro0 < macro_steps; macro0 += kDecodeMacroInFlight) {
    MacroLoads<kRowGroups> loads[kDecodeMacroInFlight];
#pragma unroll
    for (int u = 0; u < kDecodeMacroInFlight; ++u) {
      const int64_t depth0 = (macro0 + u) * kDecodeMacroDepth;
      // K is a multiple of 32, so the lane's 32 values are all in or all out.
      const bool present = macro0 + u < macro_steps && depth0 + 32 * t < depth_end;
      // The lane's depth, or the column's first when absent (its absmax is then 0).
      const int64_t depth = present ? depth0 + 32 * t : 0;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int64_t flat = lanes.column_flat[c] + depth;
        loads[u].weight[c] = __ldg(reinterpret_cast<const uint4*>(w.packed + flat / 2));
        const float absmax = decode_absmax<kNested>(w, flat >> w.blocksize_log2);
        loads[u].absmax[c] = present && lanes.column_valid[c] ? absmax : 0.0f;
      }
#pragma unroll
      for (int group = 0; group < kRowGroups; ++group)
#pragma unroll
        for (int v = 0; v < 4; ++v)
          loads[u].x[group][v] = present && lanes.row_valid[group]
                                     ? __ldg(reinterpret_cast<const uint4*>(lanes.x_row[group] + depth0) + v)
                                     : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kDecodeMacroInFlight; ++u)
#pragma unroll
      for (int s = 0; s < 8; ++s) {
        uint32_t b[kRowGroups][2];
#pragma unroll
        for (int group = 0; group < kRowGroups; ++group) {
          // Words 2s and 2s + 1 of the row's 64-byte slice: vector s / 2, words 2 (s % 2) ..
          b[group][0] = word_of(loads[u].x[group][s / 2], 2 * (s % 2));
          b[group][1] = word_of(loads[u].x[group][s / 2], 2 * (s % 2) + 1);
        }
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const uint32_t a[4] = {
              weight_pair<Element>(loads[u].weight[2 * i], 2 * s, loads[u].absmax[2 * i], table, lane_bits),
              weight_pair<Element>(loads[u].weight[2 * i + 1], 2 * s, loads[u].absmax[2 * i + 1], table, lane_bits),
              weight_pair<Element>(loads[u].weight[2 * i], 2 * s + 1, loads[u].absmax[2 * i], table, lane_bits),
              weight_pair<Element>(loads[u].weight[2 * i + 1], 2 * s + 1, loads[u].absmax[2 * i + 1], table,
                                   lane_bits)};
#pragma unroll
          for (int group = 0; group < kRowGroups; ++group) mma_m16n8k16<Element>(acc[i][group], a, b[group]);
        }
      }
  }

  finish_tile<Element, kLora>(p, split, expert, row0, row_end, lanes.row_valid,
                              [&](int i, int half) { return lanes.feature(i, half); }, acc);
}

// decode_tile with the scale applied to sums instead of to each weight (blocksize >=
// 64): a macro step is two 64-deep halves, each inside one absmax block, and lane t
// holds depths 64h + 16t .. + 15 of half h (an 8-byte piece of each weight column, 32
// bytes of each token row), so the four lanes of each k16 step read one block. The
// unscaled codes (OperandPairTable) go into the mma; each half's four k16 steps sum
// into `part`, which joins the accumulators times the columns' absmax. Per weight
// value that saves the multiply and the conversion of weight_pair: about a third of
// the instructions of a kernel bound by their issue. The products are of the codes
// rounded to the operand type, then scaled in float32 (weight_pair rounds the scaled
// value instead): the same relative error.
// One macro step of loads in flight (decode_tile keeps two): with its extra absmax and
// partial sums, two spilled more than decode_tile at 4 blocks per SM (ptxas -v).
constexpr int kDeferredMacroInFlight = 1;

template <class Activation, bool kLora, bool kNested, int kRowGroups>
__device__ __forceinline__ void decode_tile_deferred(const RowsGemmParams& p, const SplitPartials& split,
                                                     const OperandPairTable<typename OperandOf<Activation>::Element>& table,
                                                     int32_t expert, int64_t row0, int64_t row_end) {
  using Element = typename OperandOf<Activation>::Element;
  const int t = threadIdx.x % 4;
  const uint32_t lane_bits = operand_pair_lane_bits();
  const QuantWeightView& w = p.weight;  // [E, N, K]: dim1 = N, dim2 = K = depth
  // The lane's 16 t deep slice of each 64-deep half.
  const DecodeLanes<Activation, kRowGroups> lanes(p, expert, row0, row_end, 16 * t);

  struct HalfLoads {
    uint2 weight[4];
    float absmax[4];
    uint4 x[kRowGroups][2];
  };
  float acc[2][kRowGroups][4] = {};
  const DecodeDepth range(p, split);
  const int64_t depth_end = range.end, macro_steps = range.macro_steps;
  for (int64_t macro0 = range.first_macro_step; macro0 < macro_steps; macro0 += kDeferredMacroInFlight) {
    HalfLoads loads[kDeferredMacroInFlight][2];
#pragma unroll
    for (int u = 0; u < kDeferredMacroInFlight; ++u)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t half0 = (macro0 + u) * kDecodeMacroDepth + 64 * h;
        // K is whole blocks of >= 64, so a half is all in or all out.
        const bool present = macro0 + u < macro_steps && half0 < depth_end;
        // The half's first depth, or the column's first when absent (absmax 0 then).
        const int64_t base = present ? half0 : 0;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int64_t flat = lanes.column_flat[c] + base;
          loads[u][h].weight[c] = __ldg(reinterpret_cast<const uint2*>(w.packed + (flat + 16 * t) / 2));
          const float absmax = decode_absmax<kNested>(w, flat >> w.blocksize_log2);
          loads[u][h].absmax[c] = present && lanes.column_valid[c] ? absmax : 0.0f;
        }
#pragma unroll
        for (int group = 0; group < kRowGroups; ++group)
#pragma unroll
          for (int v = 0; v < 2; ++v)
            loads[u][h].x[group][v] = present && lanes.row_valid[group]
                                          ? __ldg(reinterpret_cast<const uint4*>(lanes.x_row[group] + half0) + v)
                                          : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
    for (int u = 0; u < kDeferredMacroInFlight; ++u)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const HalfLoads& half = loads[u][h];
        float part[2][kRowGroups][4] = {};
#pragma unroll
        for (int s = 0; s < 4; ++s) {
          uint32_t b[kRowGroups][2];
#pragma unroll
          for (int group = 0; group < kRowGroups; ++group) {
            // Words 2s and 2s + 1 of the row's 32-byte slice: vector s / 2, words 2 (s % 2) ..
            b[group][0] = word_of(half.x[group][s / 2], 2 * (s % 2));
            b[group][1] = word_of(half.x[group][s / 2], 2 * (s % 2) + 1);
          }
#pragma unroll
          for (int i = 0; i < 2; ++i) {
            const uint32_t a[4] = {code_pair(half.weight[2 * i], 2 * s, table, lane_bits),
                                   code_pair(half.weight[2 * i + 1], 2 * s, table, lane_bits),
                                   code_pair(half.weight[2 * i], 2 * s + 1, table, lane_bits),
                                   code_pair(half.weight[2 * i + 1], 2 * s + 1, table, lane_bits)};
#pragma unroll
            for (int group = 0; group < kRowGroups; ++group) mma_m16n8k16<Element>(part[i][group], a, b[group]);
          }
        }
        // part[i][group][q] belongs to column 2i + q / 2 (row g or g + 8 of tile i).
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int group = 0; group < kRowGroups; ++group)
#pragma unroll
            for (int q = 0; q < 4; ++q)
              acc[i][group][q] = fmaf(part[i][group][q], half.absmax[2 * i + q / 2], acc[i][group][q]);
      }
  }

  finish_tile<Element, kLora>(p, split, expert, row0, row_end, lanes.row_valid,
                              [&](int i, int half) { return lanes.feature(i, half); }, acc);
}

}  // namespace decode_detail

// kDeferredScale: decode_tile_deferred (blocksize >= 64, chosen at launch), else decode_tile.
template <class Activation, bool kLora, bool kDeferredScale>
__global__ void __launch_bounds__(kDecodeThreads, 4)
    decode_gemm_kernel(const RowsGemmParams p, const SplitPartials split, const ChainEntry entry) {
  static_assert(OperandOf<Activation>::kTerms == 1, "16-bit activations only");
  enter_chained_kernel(entry);
  using Element = typename OperandOf<Activation>::Element;
  // Constant shared addresses, so each lookup is one LDS at [offset + constant].
  __shared__ float code[16];
  __shared__ std::conditional_t<kDeferredScale, decode_detail::OperandPairTable<Element>, decode_detail::PairTable>
      table;
  decode_detail::decode_block<2>(p, code, table, [&](auto groups, int32_t expert, int64_t row0,
                                                                 int64_t row_end) {
    constexpr int kRowGroups = decltype(groups)::value;
    if constexpr (kDeferredScale) {
      if (p.weight.nested)
        decode_detail::decode_tile_deferred<Activation, kLora, true, kRowGroups>(p, split, table, expert, row0,
                                                                                 row_end);
      else
        decode_detail::decode_tile_deferred<Activation, kLora, false, kRowGroups>(p, split, table, expert, row0,
                                                                                  row_end);
    } else {
      if (p.weight.nested)
        decode_detail::decode_tile<Activation, kLora, true, kRowGroups>(p, split, table, expert, row0, row_end);
      else
        decode_detail::decode_tile<Activation, kLora, false, kRowGroups>(p, split, table, expert, row0, row_end);
    }
  });
}

}  // namespace moeq::cuda
