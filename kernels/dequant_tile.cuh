// 4-bit weights (NF4/FP4, plain or nested absmax) read as 32-element chunks and
// dequantized through a 16-entry table into shared-memory operand tiles.
#pragma once

#include "core/format.hpp"
#include "core/problems.hpp"
#include "gemm_tile.cuh"

#include <cstdint>

namespace moeq::cuda {

// Elements per chunk: 16 packed bytes. The weight's last dim is a multiple of the
// blocksize (>= 32), so a chunk starting at a multiple of 32 lies in one block and
// needs one absmax.
constexpr int kChunkElements = 32;
constexpr int kChunkBytes = kChunkElements / 2;

// The device view of a 3-D quantized weight [E, D1, D2] (blocks along D2).
struct QuantWeightView {
  const uint8_t* packed;
  const float* absmax;          // plain
  const uint8_t* absmax_codes;  // nested
  const float* nested_absmax;
  const float* nested_code;
  const float* nested_offset;
  int64_t dim1;
  int64_t dim2;
  int32_t blocksize_log2;
  bool nested;
  bool packed_aligned;  // packed is 16-byte aligned: chunks load as one uint4
  Format format;
};

inline QuantWeightView make_quant_weight_view(const QuantizedBuffers& weight, int64_t dim1,
                                              int64_t dim2) {
  QuantWeightView view{};
  view.packed = weight.packed;
  view.absmax = weight.absmax;
  view.absmax_codes = weight.absmax_codes;
  view.nested_absmax = weight.nested_absmax;
  view.nested_code = weight.nested_code;
  view.nested_offset = weight.nested_offset;
  view.dim1 = dim1;
  view.dim2 = dim2;
  int32_t log2 = 0;
  while ((int64_t{1} << log2) < weight.blocksize) ++log2;
  view.blocksize_log2 = log2;
  view.nested = weight.nested;
  view.packed_aligned = reinterpret_cast<uintptr_t>(weight.packed) % 16 == 0;
  view.format = weight.format;
  return view;
}

// The 16 code values, loaded once per block into shared memory. The 16 entries sit
// in 16 distinct banks, so table lookups never conflict.
struct CodeTable {
  float value[16];

  __device__ __forceinline__ void load(Format format) {
    if (threadIdx.x < 16) value[threadIdx.x] = code_value(format, threadIdx.x);
  }
};

// absmax of block `block`; nested: code * nested_absmax then + offset, two float32
// roundings exactly as the CPU backend and bitsandbytes compute it (no fused multiply-add).
__device__ __forceinline__ float block_absmax(const QuantWeightView& w, int64_t block) {
  if (!w.nested) return __ldg(w.absmax + block);
  const float scaled =
      __fmul_rn(__ldg(w.nested_code + __ldg(w.absmax_codes + block)), __ldg(w.nested_absmax + (block >> 8)));
  return __fadd_rn(scaled, __ldg(w.nested_offset));
}

// One chunk in registers: its packed bytes and its block's absmax.
struct PackedChunk {
  uint4 bytes;
  float absmax;

  // Chunk (expert, d1, d2 .. d2 + 31); out of range: absmax 0, so it dequantizes to zeros.
  __device__ __forceinline__ void fetch(const QuantWeightView& w, int64_t expert, int64_t d1,
                                        int64_t d2) {
    if (d1 >= w.dim1 || d2 >= w.dim2) {
      bytes = make_uint4(0u, 0u, 0u, 0u);
      absmax = 0.0f;
      return;
    }
    const int64_t flat = (expert * w.dim1 + d1) * w.dim2 + d2;
    const uint8_t* source = w.packed + flat / 2;
    if (w.packed_aligned) {
      bytes = __ldg(reinterpret_cast<const uint4*>(source));
    } else {
      uint32_t word[4];
#pragma unroll
      for (int q = 0; q < 4; ++q)
        word[q] = static_cast<uint32_t>(__ldg(source + 4 * q)) |
                  static_cast<uint32_t>(__ldg(source + 4 * q + 1)) << 8 |
                  static_cast<uint32_t>(__ldg(source + 4 * q + 2)) << 16 |
                  static_cast<uint32_t>(__ldg(source + 4 * q + 3)) << 24;
      bytes = make_uint4(word[0], word[1], word[2], word[3]);
    }
    absmax = block_absmax(w, flat >> w.blocksize_log2);
  }

  // The 32 values (dtype(code * absmax), float32 product rounded once) into
  // columns col .. col + 31 of `row` in every term plane of a tile.
  template <class Operand, int Rows, int Cols>
  __device__ __forceinline__ void store(SmemTile<Operand, Rows, Cols>& tile, int row, int col,
                                        const CodeTable& table) const {
    const uint32_t words[4] = {bytes.x, bytes.y, bytes.z, bytes.w};
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      uint32_t pairs[Operand::kTerms][4];
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const uint32_t byte = (words[q] >> (8 * b)) & 0xffu;
        const float high_value = table.value[byte >> 4] * absmax;
        const float low_value = table.value[byte & 15u] * absmax;
        if constexpr (Operand::kTerms == 1) {
          pairs[0][b] = round_pair<typename Operand::Element>(high_value, low_value);
        } else {
          typename Operand::Element high[Operand::kTerms], low[Operand::kTerms];
          split_terms<Operand>(high_value, high);
          split_terms<Operand>(low_value, low);
#pragma unroll
          for (int term = 0; term < Operand::kTerms; ++term) pairs[term][b] = pack_elements(high[term], low[term]);
        }
      }
#pragma unroll
      for (int term = 0; term < Operand::kTerms; ++term)
        *reinterpret_cast<uint4*>(&tile.data[term][row][col + 8 * q]) =
            make_uint4(pairs[term][0], pairs[term][1], pairs[term][2], pairs[term][3]);
    }
  }
};

}  // namespace moeq::cuda
