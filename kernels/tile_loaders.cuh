// Loaders that fill one shared-memory operand tile per depth step: fetch() starts
// the global reads into registers or straight into the (free) destination tile,
// issued before the tensor cores work on the other stage; commit() converts and
// writes the registers, or waits for the direct copies. Elements out of range are zero,
// so padding never carries NaN into a product.
#pragma once

#include "dequant_tile.cuh"
#include "gemm_tile.cuh"
#include "mma_sync.cuh"
#include "operand_views.cuh"

#include <cstdint>
#include <type_traits>

namespace moeq::cuda {

// 16 bytes from global to shared memory without a register stage; the copy
// completes at cp_async_wait_all.
__device__ __forceinline__ void cp_async_16(void* shared_destination, const void* global_source) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_address(shared_destination)),
               "l"(global_source));
}
// The same, or 16 zero bytes written instead when `copy` is false (source size 0:
// nothing is read). The "memory" clobber keeps the compiler from moving ordinary
// shared-memory accesses across it.
__device__ __forceinline__ void cp_async_16_or_zero(void* shared_destination, const void* global_source, bool copy) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(shared_destination)),
               "l"(global_source), "r"(copy ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }

// Tile element (r, c) = rows view (row0 + r, col0 + c); rows at or past row_end
// and columns at or past the view's width are zero. 16-bit activations go straight
// to the destination stage (cp.async, 16-byte vectors where aligned), so no
// registers hold them while the tensor cores work; float32 is staged in registers
// and split into its terms at commit.
template <class Activation, class Tile, int Threads>
struct RowsLoader {
  using Operand = typename Tile::OperandType;
  static constexpr bool kDirect = sizeof(Activation) == 2;
  static constexpr int kVector = 16 / static_cast<int>(sizeof(Activation));
  static constexpr int kVectorsPerRow = Tile::kCols / kVector;
  static constexpr int kVectors = Tile::kRows * kVectorsPerRow;
  static constexpr int kPerThread = (kVectors + Threads - 1) / Threads;
  static constexpr int kStaged = kDirect ? 1 : kPerThread;
  static_assert(Tile::kCols % kVector == 0, "tile columns must be whole vectors");
  static_assert(sizeof(Activation) == 4 || Operand::kTerms == 1,
                "16-bit activations are copied as they are");

  RowsView view;
  int64_t row_end;
  uint4 vector[kStaged];

  // The vector at (row, col) gathered element by element (a row or width edge, or
  // an unaligned view), zeros outside.
  __device__ __forceinline__ uint4 gather(int64_t row, int64_t col) const {
    const bool row_valid = row < row_end;
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
    return make_uint4(words[0], words[1], words[2], words[3]);
  }

  // Calls body(i, r, c) for this thread's vectors: the i-th, at tile (r, c).
  template <class Body>
  static __device__ __forceinline__ void for_each_vector(Body&& body) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int index = threadIdx.x + i * Threads;
      if (kVectors % Threads != 0 && index >= kVectors) break;
      body(i, index / kVectorsPerRow, index % kVectorsPerRow * kVector);
    }
  }

  __device__ __forceinline__ void fetch(int64_t row0, int64_t col0, Tile& tile) {
    for_each_vector([&](int i, int r, int c) {
      const int64_t row = row0 + r;
      const int64_t col = col0 + c;
      const bool whole = row < row_end && view.vector_aligned && col + kVector <= view.width;
      const Activation* source = static_cast<const Activation*>(view.data) + row * view.ld + col;
      if constexpr (kDirect) {
        if (whole) cp_async_16(&tile.data[0][r][c], source);
        else *reinterpret_cast<uint4*>(&tile.data[0][r][c]) = gather(row, col);
      } else {
        vector[i] = whole ? __ldg(reinterpret_cast<const uint4*>(source)) : gather(row, col);
      }
    });
  }

  __device__ __forceinline__ void commit(Tile& tile) const {
    if constexpr (kDirect) {
      cp_async_wait_all();
    } else {
      for_each_vector([&](int i, int r, int c) {
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
      });
    }
  }
};

// Tile element (r, c) = scale * data[offset + (row0 + r) * row_stride + (col0 + c) * col_stride]
// of a runtime dtype, zero at or past (row_limit, col_limit). For the small rank-r
// operands (LoRA factors, x A^T, dY B): element loads at commit time, issued
// LoadsInFlight at a time before the first is used, so a tile costs a few memory
// latencies rather than one per element; a kernel whose accumulators fill the
// registers asks for fewer.
template <class Tile, int Threads, int LoadsInFlight = 16>
struct StridedLoader {
  using Operand = typename Tile::OperandType;
  static constexpr int kPerThread = (Tile::kRows * Tile::kCols + Threads - 1) / Threads;
  static constexpr int kBatch = kPerThread < LoadsInFlight ? kPerThread : LoadsInFlight;
  // This thread's element i: column first_c + Threads * (i % kPassesPerRow) of row
  // first_r + kRowsPerPass * (i / kPassesPerRow), so offsets are the thread's first
  // plus multiples of two strides (no 64-bit product per element).
  static_assert(Threads % Tile::kCols == 0 || Tile::kCols % Threads == 0,
                "a pass of the threads covers whole rows or a row whole passes");
  static constexpr int kRowsPerPass = Threads >= Tile::kCols ? Threads / Tile::kCols : 1;
  static constexpr int kPassesPerRow = Threads >= Tile::kCols ? 1 : Tile::kCols / Threads;

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

  __device__ __forceinline__ void fetch(int64_t first_row, int64_t first_col, Tile&) {
    row0 = first_row;
    col0 = first_col;
  }

  // Whether this thread's element i lies in the tile and inside the limits.
  __device__ __forceinline__ bool in_range(int i, int first_r, int64_t rows_left, int64_t cols_left) const {
    const int pass_row = i / kPassesPerRow;
    const int pass_col = i % kPassesPerRow;
    return i < kPerThread && first_r + kRowsPerPass * pass_row < Tile::kRows &&
           kRowsPerPass * pass_row < rows_left && Threads * pass_col < cols_left;
  }

  // value[j] = this thread's element first + j, scaled; zero outside the tile and the limits.
  template <class Stored>
  __device__ __forceinline__ void load_batch(int first, float (&value)[kBatch]) const {
    const int first_r = threadIdx.x / Tile::kCols;
    const int first_c = threadIdx.x % Tile::kCols;
    const int64_t rows_left = row_limit - (row0 + first_r);
    const int64_t cols_left = col_limit - (col0 + first_c);
    const Stored* origin = static_cast<const Stored*>(data) + offset + (row0 + first_r) * row_stride +
                           (col0 + first_c) * col_stride;
    const int64_t row_step = kRowsPerPass * row_stride;
    const int64_t col_step = Threads * col_stride;
    Stored raw[kBatch];
#pragma unroll
    for (int j = 0; j < kBatch; ++j)
      if (in_range(first + j, first_r, rows_left, cols_left))
        raw[j] = __ldg(origin + (first + j) / kPassesPerRow * row_step +
                       (first + j) % kPassesPerRow * col_step);
#pragma unroll
    for (int j = 0; j < kBatch; ++j)
      value[j] = in_range(first + j, first_r, rows_left, cols_left) ? scale * to_float32(raw[j]) : 0.0f;
  }

  __device__ __forceinline__ void commit(Tile& tile) const {
    const int first_r = threadIdx.x / Tile::kCols;
    const int first_c = threadIdx.x % Tile::kCols;
#pragma unroll 1
    for (int first = 0; first < kPerThread; first += kBatch) {
      float value[kBatch];
      switch (type) {
        case ScalarType::Float16: load_batch<__half>(first, value); break;
        case ScalarType::BFloat16: load_batch<__nv_bfloat16>(first, value); break;
        case ScalarType::Float32: load_batch<float>(first, value); break;
      }
#pragma unroll
      for (int j = 0; j < kBatch; ++j) {
        const int r = first_r + kRowsPerPass * ((first + j) / kPassesPerRow);
        const int c = first_c + Threads * ((first + j) % kPassesPerRow);
        if (first + j >= kPerThread || r >= Tile::kRows) break;
        typename Operand::Element terms[Operand::kTerms];
        split_terms<Operand>(value[j], terms);
#pragma unroll
        for (int term = 0; term < Operand::kTerms; ++term) tile.data[term][r][c] = terms[term];
      }
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

  __device__ __forceinline__ void fetch(int64_t row0, int64_t col0, Tile&) {
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
