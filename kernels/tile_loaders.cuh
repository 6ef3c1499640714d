// Loaders that fill one shared-memory operand tile per depth step: fetch() reads
// global memory into registers (issued before the tensor cores work on the other
// stage), commit() converts and writes the tile. Elements out of range are zero,
// so padding never carries NaN into a product.
#pragma once

#include "dequant_tile.cuh"
#include "gemm_tile.cuh"
#include "operand_views.cuh"

#include <cstdint>
#include <type_traits>

namespace moeq::cuda {

// Tile element (r, c) = rows view (row0 + r, col0 + c); rows at or past row_end
// and columns at or past the view's width are zero. 16-byte vectors where aligned.
template <class Activation, class Tile, int Threads>
struct RowsLoader {
  using Operand = typename Tile::OperandType;
  static constexpr int kVector = 16 / static_cast<int>(sizeof(Activation));
  static constexpr int kVectorsPerRow = Tile::kCols / kVector;
  static constexpr int kVectors = Tile::kRows * kVectorsPerRow;
  static constexpr int kPerThread = (kVectors + Threads - 1) / Threads;
  static_assert(Tile::kCols % kVector == 0, "tile columns must be whole vectors");
  static_assert(sizeof(Activation) == 4 || Operand::kTerms == 1,
                "16-bit activations are copied as they are");

  RowsView view;
  int64_t row_end;
  uint4 vector[kPerThread];

  __device__ __forceinline__ void fetch(int64_t row0, int64_t col0) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int index = threadIdx.x + i * Threads;
      if (kVectors % Threads != 0 && index >= kVectors) break;
      const int64_t row = row0 + index / kVectorsPerRow;
      const int64_t col = col0 + index % kVectorsPerRow * kVector;
      const bool row_valid = row < row_end;
      if (row_valid && view.vector_aligned && col + kVector <= view.width) {
        vector[i] = __ldg(reinterpret_cast<const uint4*>(static_cast<const Activation*>(view.data) +
                                                         row * view.ld + col));
        continue;
      }
      uint32_t words[4];
      if constexpr (sizeof(Activation) == 4) {
        const float* source = static_cast<const float*>(view.data) + row * view.ld;
#pragma unroll
        for (int v = 0; v < 4; ++v)
          words[v] = row_valid && col + v < view.width ? __float_as_uint(__ldg(source + col + v)) : 0u;
      } else {
        const unsigned short* source = static_cast<const unsigned short*>(view.data) + row * view.ld;
#pragma unroll
        for (int w = 0; w < 4; ++w) {
          const uint32_t first = row_valid && col + 2 * w < view.width ? __ldg(source + col + 2 * w) : 0u;
          const uint32_t second =
              row_valid && col + 2 * w + 1 < view.width ? __ldg(source + col + 2 * w + 1) : 0u;
          words[w] = first | second << 16;
        }
      }
      vector[i] = make_uint4(words[0], words[1], words[2], words[3]);
    }
  }

  __device__ __forceinline__ void commit(Tile& tile) const {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int index = threadIdx.x + i * Threads;
      if (kVectors % Threads != 0 && index >= kVectors) break;
      const int r = index / kVectorsPerRow;
      const int c = index % kVectorsPerRow * kVector;
      if constexpr (sizeof(Activation) == 2) {
        *reinterpret_cast<uint4*>(&tile.data[0][r][c]) = vector[i];
      } else {
        const float values[4] = {__uint_as_float(vector[i].x), __uint_as_float(vector[i].y),
                                 __uint_as_float(vector[i].z), __uint_as_float(vector[i].w)};
        typename Operand::Element terms[4][Operand::kTerms];
#pragma unroll
        for (int v = 0; v < 4; ++v) split_terms<Operand>(values[v], terms[v]);
#pragma unroll
        for (int term = 0; term < Operand::kTerms; ++term)
          *reinterpret_cast<uint2*>(&tile.data[term][r][c]) =
              make_uint2(pack_elements(terms[0][term], terms[1][term]),
                         pack_elements(terms[2][term], terms[3][term]));
      }
    }
  }
};

// Tile element (r, c) = scale * data[offset + (row0 + r) * row_stride + (col0 + c) * col_stride]
// of a runtime dtype, zero at or past (row_limit, col_limit). For the small rank-r
// operands (LoRA factors, x A^T, dY B): element loads, done at commit time.
template <class Tile, int Threads>
struct StridedLoader {
  using Operand = typename Tile::OperandType;

  const void* data;
  ScalarType type;
  int64_t offset;
  int64_t row_stride;
  int64_t col_stride;
  int64_t row_limit;
  int64_t col_limit;
  float scale;
  int64_t row0 = 0;
  int64_t col0 = 0;

  __device__ __forceinline__ void fetch(int64_t first_row, int64_t first_col) {
    row0 = first_row;
    col0 = first_col;
  }

  __device__ __forceinline__ void commit(Tile& tile) const {
    for (int index = threadIdx.x; index < Tile::kRows * Tile::kCols; index += Threads) {
      const int r = index / Tile::kCols;
      const int c = index % Tile::kCols;
      const int64_t row = row0 + r;
      const int64_t col = col0 + c;
      const float value = row < row_limit && col < col_limit
                              ? scale * load_as_float(data, type, offset + row * row_stride + col * col_stride)
                              : 0.0f;
      typename Operand::Element terms[Operand::kTerms];
      split_terms<Operand>(value, terms);
#pragma unroll
      for (int term = 0; term < Operand::kTerms; ++term) tile.data[term][r][c] = terms[term];
    }
  }
};

// Tile element (r, c) = dequantized W[expert, row0 + r, col0 + c] of a [E, D1, D2]
// weight; columns run along D2, where the quantization blocks run.
template <class Tile, int Threads>
struct QuantLoader {
  static constexpr int kChunksPerRow = Tile::kCols / kChunkElements;
  static constexpr int kChunks = Tile::kRows * kChunksPerRow;
  static constexpr int kPerThread = (kChunks + Threads - 1) / Threads;
  static_assert(Tile::kCols % kChunkElements == 0, "tile columns must be whole 4-bit chunks");

  QuantWeightView weight;
  int64_t expert;
  const CodeTable* table;
  PackedChunk chunk[kPerThread];

  __device__ __forceinline__ void fetch(int64_t row0, int64_t col0) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int index = threadIdx.x + i * Threads;
      if (kChunks % Threads != 0 && index >= kChunks) break;
      chunk[i].fetch(weight, expert, row0 + index / kChunksPerRow,
                     col0 + index % kChunksPerRow * kChunkElements);
    }
  }

  __device__ __forceinline__ void commit(Tile& tile) const {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int index = threadIdx.x + i * Threads;
      if (kChunks % Threads != 0 && index >= kChunks) break;
      chunk[i].store(tile, index / kChunksPerRow, index % kChunksPerRow * kChunkElements, *table);
    }
  }
};

}  // namespace moeq::cuda
