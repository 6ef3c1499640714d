// Tensor-core building blocks for sm_80+: ldmatrix fragment loads from padded
// shared-memory tiles in either orientation, the m16n8k16 mma.sync atom, and a
// block's accumulator tile that consumes one depth step of operand tiles.
#pragma once

#include "gemm_tile.cuh"

#include <cstdint>
#include <type_traits>

namespace moeq::cuda {

__device__ __forceinline__ uint32_t smem_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// Four 8x8 b16 matrices; lane L gives the row address of matrix L / 8.
template <bool kTransposed>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&regs)[4], const void* row_address) {
  const uint32_t address = smem_address(row_address);
  if constexpr (kTransposed) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(regs[0]), "=r"(regs[1]), "=r"(regs[2]), "=r"(regs[3])
                 : "r"(address));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(regs[0]), "=r"(regs[1]), "=r"(regs[2]), "=r"(regs[3])
                 : "r"(address));
  }
}

// d += a * b for one m16n8k16 tile, float32 accumulators.
template <class Element>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4],
                                             const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<Element, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

// The accumulators of one block tile (Shape::kRows x Shape::kCols), distributed
// over warps as the m16n8 accumulator layout of mma.sync.
//   A operand: element (i, t) of output row i, reduced index t, stored in an
//     ATile as [i][t] (kATransposed false) or [t][i] (true).
//   B operand: element (j, t) of output column j, stored in a BTile as [j][t]
//     (kBTransposed false) or [t][j] (true).
template <class Shape, class Operand, bool kATransposed, bool kBTransposed>
struct BlockAccumulator {
  using Element = typename Operand::Element;
  using ATile = SmemTile<Operand, kATransposed ? Shape::kDepth : Shape::kRows,
                         kATransposed ? Shape::kRows : Shape::kDepth>;
  using BTile = SmemTile<Operand, kBTransposed ? Shape::kDepth : Shape::kCols,
                         kBTransposed ? Shape::kCols : Shape::kDepth>;
  static constexpr int kTerms = Operand::kTerms;

  float acc[Shape::kMmaRows][Shape::kMmaCols][4];

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int mi = 0; mi < Shape::kMmaRows; ++mi)
#pragma unroll
      for (int ni = 0; ni < Shape::kMmaCols; ++ni)
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[mi][ni][q] = 0.0f;
  }

  static __device__ __forceinline__ int warp_row0() {
    return (threadIdx.x / 32) / Shape::kWarpsCols * Shape::kWarpRows;
  }
  static __device__ __forceinline__ int warp_col0() {
    return (threadIdx.x / 32) % Shape::kWarpsCols * Shape::kWarpCols;
  }

  // A fragment of the m16 tile at row i0, depth t0 (lane L addresses matrix L / 8:
  // [i0..+8, t0..+8], [i0+8.., t0..], [i0.., t0+8..], [i0+8.., t0+8..]).
  static __device__ __forceinline__ void load_a(uint32_t (&frag)[4], const ATile& tile, int term,
                                                int i0, int t0) {
    const int lane = threadIdx.x % 32;
    const int matrix = lane / 8;
    const int r = lane % 8;
    if constexpr (kATransposed) {
      const int t = t0 + r + (matrix / 2) * 8;
      const int i = i0 + (matrix % 2) * 8;
      ldmatrix_x4<true>(frag, &tile.data[term][t][i]);
    } else {
      const int i = i0 + r + (matrix % 2) * 8;
      const int t = t0 + (matrix / 2) * 8;
      ldmatrix_x4<false>(frag, &tile.data[term][i][t]);
    }
  }

  // B fragments of the two n8 tiles at columns j0 and j0 + 8, depth t0:
  // frag[0..1] for j0, frag[2..3] for j0 + 8.
  static __device__ __forceinline__ void load_b(uint32_t (&frag)[4], const BTile& tile, int term,
                                                int j0, int t0) {
    const int lane = threadIdx.x % 32;
    const int matrix = lane / 8;
    const int r = lane % 8;
    if constexpr (kBTransposed) {
      const int t = t0 + r + (matrix % 2) * 8;
      const int j = j0 + (matrix / 2) * 8;
      ldmatrix_x4<true>(frag, &tile.data[term][t][j]);
    } else {
      const int j = j0 + r + (matrix / 2) * 8;
      const int t = t0 + (matrix % 2) * 8;
      ldmatrix_x4<false>(frag, &tile.data[term][j][t]);
    }
  }

  // acc += A(:, step) * B(:, step)^T over one depth step. With two terms the
  // lo*lo product is left out (below float32 rounding of the hi*hi term).
  __device__ __forceinline__ void step(const ATile& a_tile, const BTile& b_tile) {
    const int row0 = warp_row0();
    const int col0 = warp_col0();
#pragma unroll
    for (int t0 = 0; t0 < Shape::kDepth; t0 += 16) {
      uint32_t a[kTerms][Shape::kMmaRows][4];
      uint32_t b[kTerms][Shape::kMmaCols / 2][4];
#pragma unroll
      for (int term = 0; term < kTerms; ++term) {
#pragma unroll
        for (int mi = 0; mi < Shape::kMmaRows; ++mi) load_a(a[term][mi], a_tile, term, row0 + 16 * mi, t0);
#pragma unroll
        for (int nj = 0; nj < Shape::kMmaCols / 2; ++nj) load_b(b[term][nj], b_tile, term, col0 + 16 * nj, t0);
      }
#pragma unroll
      for (int mi = 0; mi < Shape::kMmaRows; ++mi)
#pragma unroll
        for (int ni = 0; ni < Shape::kMmaCols; ++ni) {
          const uint32_t b_hi[2] = {b[0][ni / 2][(ni % 2) * 2], b[0][ni / 2][(ni % 2) * 2 + 1]};
          mma_m16n8k16<Element>(acc[mi][ni], a[0][mi], b_hi);
          if constexpr (kTerms == 2) {
            const uint32_t b_lo[2] = {b[1][ni / 2][(ni % 2) * 2], b[1][ni / 2][(ni % 2) * 2 + 1]};
            mma_m16n8k16<Element>(acc[mi][ni], a[0][mi], b_lo);
            mma_m16n8k16<Element>(acc[mi][ni], a[1][mi], b_hi);
          }
        }
    }
  }

  // Calls store(i, j, value) for every accumulator element, (i, j) relative to the tile.
  template <class Store>
  __device__ __forceinline__ void for_each(Store&& store) const {
    const int lane = threadIdx.x % 32;
    const int row0 = warp_row0() + lane / 4;
    const int col0 = warp_col0() + (lane % 4) * 2;
#pragma unroll
    for (int mi = 0; mi < Shape::kMmaRows; ++mi)
#pragma unroll
      for (int ni = 0; ni < Shape::kMmaCols; ++ni)
#pragma unroll
        for (int q = 0; q < 4; ++q)
          store(row0 + 16 * mi + (q / 2) * 8, col0 + 8 * ni + (q % 2), acc[mi][ni][q]);
  }
};

}  // namespace moeq::cuda
