// The LoRA term of the Hopper expert GEMM (wgmma_gemm.cuh): + s (x A^T) B^T as
// rank steps of wgmma. The producer warpgroup's last warp writes the tile's
// s x A^T operand to shared memory a tile ahead of its use; the consumers load B's
// fragments themselves.
#pragma once

#include "gemm_tile.cuh"
#include "wgmma_gemm_layout.cuh"

#include <cstdint>
#include <type_traits>

namespace moeq::cuda {

#if MOEQ_WGMMA_DEVICE

namespace wgmma_detail {

// The A fragment of LoRA's B factor, features (feature, feature + 8) x ranks j0 + 2t ...
template <class Element>
__device__ __forceinline__ void lora_fragment(const WgmmaGemmParams& p, int64_t expert, int64_t feature,
                                              int64_t j0, uint32_t (&a)[4]) {
  const int t = threadIdx.x % 4;
  auto value = [&](int64_t f, int64_t j) {
    if (f >= p.cols || j >= p.rank) return 0.0f;
    const StridedView& v = p.lora_weight;
    return load_as_float(v.data, v.type, expert * v.expert_stride + f * v.index_stride + j * v.depth_stride);
  };
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int64_t f = feature + 8 * (r % 2);
    const int64_t j = j0 + 2 * t + 8 * (r / 2);
    a[r] = round_pair<Element>(value(f, j), value(f, j + 1));
  }
}

// Writes the LoRA operand tile's cells for the expert's rows i of the tile and the
// chunk's ranks: s x A^T (stored as Source) at token row0 + i, rank j0 + j, rounded to
// the operand type. A cell is kRanks consecutive ranks: 1, or a 16-byte vector (unit
// rank stride, 16-byte aligned rows, a rank of whole vectors), one load each. Lanes
// take cells in turn, four loads in flight each: with a lane per row, or a load per
// element where vectors serve, the filler outlasted the 768-deep products of a Qwen3
// down tile (that forward took 1.12 ms, 0.79 ms by vectors; H200). Cells of other
// experts' rows keep older values: they meet only token columns that are never
// stored; ranks past the last are zeros from the start (fill_lora_chunks).
template <class Element, class Source, int kRanks>
__device__ __forceinline__ void write_lora_cells(const WgmmaGemmParams& p, uint8_t* tile, const TileWork& work,
                                                 int64_t j0) {
  static_assert(kRanks == 1 || kRanks * sizeof(Source) == 16, "a cell is one rank or a 16-byte vector");
  using Cell = std::conditional_t<kRanks == 1, Source, uint4>;
  constexpr int kInFlight = 4;
  const StridedView& v = p.lora_rows;
  const int64_t rank_stride = kRanks == 1 ? v.depth_stride : 1;
  const int width = static_cast<int>(p.rank - j0 < kWgmmaDepth ? p.rank - j0 : kWgmmaDepth) / kRanks;
  const int rows = static_cast<int>(work.row_end - work.row0 < kWgmmaTokens ? work.row_end - work.row0 : kWgmmaTokens);
  const int cells = rows * width;
  const Source* first = static_cast<const Source*>(v.data) + work.row0 * v.index_stride + j0 * rank_stride;
#pragma unroll 1
  for (int cell0 = threadIdx.x % 32; cell0 < cells; cell0 += 32 * kInFlight) {
    Cell raw[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int cell = cell0 + 32 * u, i = cell / width, j = cell - i * width;
      raw[u] = cell < cells ? __ldg(reinterpret_cast<const Cell*>(first + i * v.index_stride + j * kRanks * rank_stride))
                            : Cell{};
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int cell = cell0 + 32 * u, i = cell / width, j = cell - i * width;
      if (cell >= cells) continue;
      uint8_t* target = tile + swizzled_offset(i, j * kRanks / 8) + j * kRanks % 8 * 2;
      const Source* values = reinterpret_cast<const Source*>(&raw[u]);
      if constexpr (kRanks == 1) {
        *reinterpret_cast<Element*>(target) = round_to<Element>(p.lora_scale * to_float32(values[0]));
      } else {
        uint32_t pairs[kRanks / 2];
#pragma unroll
        for (int e = 0; e < kRanks / 2; ++e)
          pairs[e] = round_pair<Element>(p.lora_scale * to_float32(values[2 * e]), p.lora_scale * to_float32(values[2 * e + 1]));
        if constexpr (kRanks == 8) *reinterpret_cast<uint4*>(target) = make_uint4(pairs[0], pairs[1], pairs[2], pairs[3]);
        else *reinterpret_cast<uint2*>(target) = make_uint2(pairs[0], pairs[1]);
      }
    }
  }
}

// The rows of s x A^T as Source: by vectors where their layout allows.
template <class Element, class Source>
__device__ __forceinline__ void write_lora_rows(const WgmmaGemmParams& p, uint8_t* tile, const TileWork& work,
                                                int64_t j0) {
  constexpr int kVector = 16 / sizeof(Source);
  const StridedView& v = p.lora_rows;
  if (v.depth_stride == 1 && v.index_stride % kVector == 0 && p.rank % kVector == 0 &&
      reinterpret_cast<uintptr_t>(v.data) % 16 == 0)
    write_lora_cells<Element, Source, kVector>(p, tile, work, j0);
  else
    write_lora_cells<Element, Source, 1>(p, tile, work, j0);
}

// The LoRA filler warp: for each tile and each 64-rank chunk, once the consumers
// are done with the previous chunk, the operand tile, made visible to wgmma.
// `chunks` counts the chunks over all tiles, as the consumers do.
template <class Element>
__device__ __forceinline__ void fill_lora_chunks(const WgmmaGemmParams& p, WgmmaGemmSmem& smem,
                                                 const TileWork& work, uint32_t& chunks) {
  if (chunks == 0) {  // the kernel's first tile: zeros past the last rank, and finite values everywhere
    for (int index = threadIdx.x % 32; index < static_cast<int>(sizeof(smem.lora) / 16); index += 32)
      reinterpret_cast<uint4*>(smem.lora)[index] = make_uint4(0, 0, 0, 0);
    __syncwarp();  // before other lanes write cells of the same 16 bytes (racecheck found it)
  }
  for (int64_t j0 = 0; j0 < p.rank; j0 += kWgmmaDepth, ++chunks) {
    cutlass::arch::ClusterBarrier::wait(&smem.lora_empty, (chunks & 1u) ^ 1u);
    switch (p.lora_rows.type) {
      case ScalarType::Float16: write_lora_rows<Element, __half>(p, smem.lora, work, j0); break;
      case ScalarType::BFloat16: write_lora_rows<Element, __nv_bfloat16>(p, smem.lora, work, j0); break;
      case ScalarType::Float32: write_lora_rows<Element, float>(p, smem.lora, work, j0); break;
    }
    cutlass::arch::fence_view_async_shared();
    cutlass::arch::ClusterBarrier::arrive(&smem.lora_full);
  }
}
}  // namespace wgmma_detail

#endif  // MOEQ_WGMMA_DEVICE

}  // namespace moeq::cuda
