// The Hopper (sm_90a) dequantizing expert GEMM, y = x W^T + s (x A^T) B^T for
// 16-bit activations and weights stored [E, N, K], computed transposed:
// y_tile^T = W_tile x_tile^T, so the dequantized weight is the register operand of
// wgmma (never stored to shared memory) and the tokens are its wide N side.
//
// Persistent blocks (one per SM) take tiles of 128 output features x 256 tokens
// of one expert in turn. The third warpgroup is the producer, running ahead across
// tiles: the copy engine (TMA) brings each 64-deep step of x (128-byte swizzle, the
// layout wgmma reads), of the packed 4-bit weight and, where its rows are whole
// 16-byte units, of its absmax into a ring of stages; three of its warps otherwise
// copy the step's absmax, and its last warp writes the tile's LoRA operand (s x A^T)
// to shared memory. Warps 0-7 are two consumer warpgroups of 64 features
// each: they turn packed bytes into bf16/f16 fragments in registers and issue wgmma
// m64 x n256 (n128 when the tile holds at most 128 tokens) x k16, then LoRA's rank
// steps. While one warpgroup dequantizes, the other's products run.
#pragma once

#include "chained_launch.cuh"
#include "dequant_tile.cuh"
#include "expert_schedule.cuh"
#include "gemm_tile.cuh"
#include "operand_views.cuh"
#include "wgmma_gemm_layout.cuh"
#include "wgmma_lora_tile.cuh"

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#if MOEQ_WGMMA_DEVICE
#include <cute/arch/copy_sm90.hpp>
#include <cute/arch/copy_sm90_desc.hpp>
#include <cute/arch/copy_sm90_tma.hpp>
#include <cute/arch/mma_sm90_desc.hpp>
#include <cute/arch/mma_sm90.hpp>
#include <cutlass/arch/reg_reconfig.h>
#endif

namespace moeq::cuda {

#if MOEQ_WGMMA_DEVICE

namespace wgmma_detail {

// The work of tile `tile` (feature tiles vary fastest, so the tiles of one
// expert's token rows run at the same time and share their x in L2). Each warp
// finds it on its own: the expert by a 32-way search over tile_prefix (two or
// three dependent loads for up to 1024 experts instead of ten).
__device__ __forceinline__ TileWork tile_work(const WgmmaGemmParams& p, int64_t tile) {
  const ExpertSchedule& s = p.schedule;
  const int lane = threadIdx.x % 32;
  const int64_t row_tile = tile / p.feature_tiles;
  int32_t low = 0, high = s.experts - 1;  // the last expert whose first tile is <= row_tile
  while (low < high) {
    const int32_t probe = low + static_cast<int32_t>((static_cast<int64_t>(high - low) * (lane + 1) + 31) / 32);
    const unsigned below = __ballot_sync(0xffffffffu, s.tile_prefix[probe] <= row_tile);
    const int count = __popc(below);  // tile_prefix is non-decreasing: probes 0 .. count-1
    const int32_t new_low = count > 0 ? __shfl_sync(0xffffffffu, probe, count - 1) : low;
    const int32_t new_high = count < 32 ? __shfl_sync(0xffffffffu, probe, count & 31) - 1 : high;
    low = new_low;
    high = new_high;
  }
  TileWork work;
  work.expert = low;
  work.row0 = s.row_begin[low] + (row_tile - s.tile_prefix[low]) * kWgmmaTokens;
  work.row_end = s.row_end[low];
  work.feature0 = tile % p.feature_tiles * kWgmmaFeatures;
  return work;
}

namespace GMMA = cute::SM90::GMMA;

// The block's running count of ring stages over all its tiles, in 32 bits: slot and
// phase depend only on its low bits, so wrapping around keeps them right (2^32 is a
// multiple of 2 * kWgmmaStages), and the per-step arithmetic stays 32-bit.
using StageCount = uint32_t;
__device__ __forceinline__ int stage_slot(StageCount count) { return static_cast<int>(count % kWgmmaStages); }
__device__ __forceinline__ uint32_t stage_phase(StageCount count) { return (count / kWgmmaStages) & 1u; }

// The register-sourced wgmma of m64 x kTokens x k16 for the operand dtype, as CuTe
// selects it (its element types are CUTLASS's).
template <class Element>
using CuteElement = std::conditional_t<std::is_same_v<Element, __half>, cute::half_t, cute::bfloat16_t>;
template <class Element, int kTokens>
using WgmmaOp = decltype(GMMA::rs_op_selector<CuteElement<Element>, CuteElement<Element>, float,
                                              cute::Shape<cute::_64, cute::Int<kTokens>, cute::_16>>());

// acc[0 .. kTokens / 2) += A (64 x 16, registers) * B (16 x kTokens, shared memory).
template <class Element, int kTokens, size_t... I>
__device__ __forceinline__ void mma_unpacked(const uint32_t (&a)[4], uint64_t b, float (&acc)[128],
                                             std::index_sequence<I...>) {
  WgmmaOp<Element, kTokens>::fma(a[0], a[1], a[2], a[3], b, acc[I]..., GMMA::ScaleOut::One);
}
template <class Element, int kTokens>
__device__ __forceinline__ void mma(const uint32_t (&a)[4], uint64_t b, float (&acc)[128]) {
  mma_unpacked<Element, kTokens>(a, b, acc, std::make_index_sequence<kTokens / 2>{});
}

__device__ __forceinline__ void fence_accumulators(float (&acc)[128]) {
#pragma unroll
  for (int i = 0; i < 128; ++i) cute::warpgroup_fence_operand(acc[i]);
}

// Keeps the compiler from moving reads or writes of a fragment set across this
// point: wgmma reads the set asynchronously until its wait.
__device__ __forceinline__ void fence_fragments(uint32_t (&a)[4]) {
#pragma unroll
  for (int r = 0; r < 4; ++r) cute::warpgroup_fence_operand(a[r]);
}

// Descriptor of a [rows][64] 16-bit tile in 128-byte swizzled rows, K-major:
// 8-row groups 1024 bytes apart. Each k16 step starts 32 bytes further.
__device__ __forceinline__ uint64_t swizzled_tile_descriptor(const void* tile) {
  cute::GmmaDescriptor descriptor;
  descriptor.bitfield.start_address_ = static_cast<uint16_t>(cute::cast_smem_ptr_to_uint(tile) >> 4);
  descriptor.bitfield.leading_byte_offset_ = 1;
  descriptor.bitfield.stride_byte_offset_ = 1024 >> 4;
  descriptor.bitfield.base_offset_ = 0;
  descriptor.bitfield.layout_type_ = static_cast<uint8_t>(GMMA::LayoutType::B128);
  return descriptor.desc_;
}

// A 4-byte copy of which the first `source_bytes` come from global memory and
// the rest are zeros (source_bytes 0: no read at all).
__device__ __forceinline__ void cp_async_4_fill(void* destination, const void* source, uint32_t source_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(cute::cast_smem_ptr_to_uint(destination)),
               "l"(source), "r"(source_bytes)
               : "memory");
}

// The absmax of a stage's chunk `index` at weight position (d1, d2) of `expert`:
// nested, code * nested absmax + offset in two float32 roundings, as
// block_absmax computes it.
template <bool kNested>
struct StageAbsmax {
  const QuantWeightView* weight;
  const float* nested_code;
  float nested_offset;
  int64_t expert;
  __device__ __forceinline__ float operator()(const float* scale, const uint32_t* codes, int index, int64_t d1,
                                              int64_t d2) const {
    if constexpr (!kNested) return scale[index];
    // The code's byte in its 4-byte word is block % 4. The last dim is whole blocks,
    // so block = (expert * D1 + d1) * (D2 / blocksize) + d2 / blocksize, and its two
    // low bits need only 32-bit arithmetic.
    const uint32_t row = static_cast<uint32_t>(expert) * static_cast<uint32_t>(weight->dim1) + static_cast<uint32_t>(d1);
    const uint32_t block = row * static_cast<uint32_t>(weight->dim2 >> weight->blocksize_log2) +
                           static_cast<uint32_t>(d2 >> weight->blocksize_log2);
    const uint32_t code = (codes[index] >> (8 * (block & 3))) & 0xffu;
    return __fadd_rn(__fmul_rn(nested_code[code], scale[index]), nested_offset);
  }
};

// How a stage's packed weight tile lies. Not transposed (W stored [E, N, K], blocks
// along the depth): 128 feature rows of 32 bytes (64 depth values). Transposed
// ([E, K, N], blocks along the features): 64 depth rows of 64 bytes (128 features).
template <bool kTransposed>
struct StageChunks {
  static constexpr int kRows = kTransposed ? kWgmmaDepth : kWgmmaFeatures;
  static constexpr int kRowBytes = (kTransposed ? kWgmmaFeatures : kWgmmaDepth) / 2;
  static constexpr int kChunksPerRow = kRowBytes * 2 / kChunkElements;
};

// Where a stage's absmax entry for (tile row, chunk) lies in WgmmaGemmSmem::absmax:
// row * row_entries + (first block & box_mask) + ((first element's offset in its
// block & block_mask) + chunk * 32) >> block_shift. By TMA the row's entries are the
// four blocks of a 16-byte unit; copied, they are its chunks (masks 0, shift log2 32).
struct StageAbsmaxLayout {
  uint32_t block_mask;
  int block_shift;
  int row_entries;
  uint32_t box_mask;
};
template <bool kTransposed>
__device__ __forceinline__ StageAbsmaxLayout stage_absmax_layout(const WgmmaGemmParams& p) {
  if (p.absmax_by_tma)
    return {(1u << p.weight.blocksize_log2) - 1u, p.weight.blocksize_log2, kWgmmaAbsmaxPerRow,
            kWgmmaAbsmaxPerRow - 1u};
  return {0u, 5, StageChunks<kTransposed>::kChunksPerRow, 0u};
}
static_assert(kChunkElements == 32, "stage_absmax_layout's copied entries shift by log2 32");

// Byte offset of byte `byte` of row `row` in a stage's packed tile, as the copy engine
// swizzles it: 16-byte units XORed with address bits 7 and up (CU_TENSOR_MAP_SWIZZLE_32B
// for the 32-byte rows, 64B for the 64-byte ones). Without it the warp's rows 128 bytes
// apart hit the same banks: 2-way conflicts on every packed load (4-way transposed).
template <bool kTransposed>
__device__ __forceinline__ uint32_t packed_offset(int row, int byte) {
  using Chunks = StageChunks<kTransposed>;
  const int pattern = kTransposed ? (row >> 1) & 3 : (row >> 2) & 1;  // address bits 7.. of the row
  return static_cast<uint32_t>(row * Chunks::kRowBytes + (byte ^ (pattern << 4)));
}


// Byte offsets into the 16-entry code table of the high and the low nibble of
// each byte of `bytes` (nibble * 4, one per byte).
__device__ __forceinline__ uint32_t high_nibble_offsets(uint32_t bytes) { return (bytes >> 2) & 0x3c3c3c3cu; }
__device__ __forceinline__ uint32_t low_nibble_offsets(uint32_t bytes) { return (bytes << 2) & 0x3c3c3c3cu; }

// dtype(code[high] * absmax), dtype(code[low] * absmax) of byte `k` of the offset
// words: the high nibble is the earlier element, the low half of the register.
template <class Element>
__device__ __forceinline__ uint32_t dequantized_pair(uint32_t high_offsets, uint32_t low_offsets, int k,
                                                     float absmax, const uint8_t* code) {
  const uint32_t high = __byte_perm(high_offsets, 0, 0x4440 | k);
  const uint32_t low = __byte_perm(low_offsets, 0, 0x4440 | k);
  return round_pair<Element>(*reinterpret_cast<const float*>(code + high) * absmax,
                             *reinterpret_cast<const float*>(code + low) * absmax);
}

// Byte t of four words, gathered into one: [w0.t, w1.t, w2.t, w3.t].
__device__ __forceinline__ uint32_t gather_bytes(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, int t) {
  const uint32_t select = static_cast<uint32_t>(t | (t + 4) << 4);
  return __byte_perm(__byte_perm(w0, w1, select), __byte_perm(w2, w3, select), 0x5410);
}

// The A fragment of k16 step `j` of a 64-deep step for the warp's feature rows
// `row` and `row + 8` (register 0: row, depth 16j + 2t..2t+1; 1: row + 8; 2: row,
// depth 16j + 2t+8..2t+9; 3: row + 8, depth 16j + 2t+8..), t = lane % 4. One k16
// step at a time lets a warpgroup dequantize the next one while the products of
// this one run, with two 4-register fragment sets (more does not fit beside the
// accumulators: ptxas then serializes wgmma).
// Not transposed: byte 8j + t of a feature row holds depth 16j + 2t, 2t+1 and byte
// 8j + 4 + t holds depth 16j + 2t + 8, 2t + 9: byte t of words 2j and 2j + 1.
// scale[half]: the absmax of rows row + 8 half in the 32-deep chunk j / 2, which the
// chunk's two k16 steps share (the caller decodes it once per chunk).
template <class Element>
__device__ __forceinline__ void weight_fragment(const uint8_t* packed, const float (&scale)[2], int row, int j,
                                                const uint8_t* code, uint32_t (&a)[4]) {
  const int t = threadIdx.x % 4;
  const uint32_t select = static_cast<uint32_t>(t | (t + 4) << 4);
#pragma unroll
  for (int half = 0; half < 2; ++half) {  // feature rows row, row + 8
    const uint2 words = *reinterpret_cast<const uint2*>(packed + packed_offset<false>(row + 8 * half, 8 * j));
    const uint32_t gathered = __byte_perm(words.x, words.y, select);  // bytes 0, 1: depth 2t.., 2t+8..
    const uint32_t high = high_nibble_offsets(gathered), low = low_nibble_offsets(gathered);
#pragma unroll
    for (int k = 0; k < 2; ++k) a[half + 2 * k] = dequantized_pair<Element>(high, low, k, scale[half], code);
  }
}

// Transposed: feature `row` is nibble (row % 2 == 0: high) of byte row / 2 of each
// depth row, and row + 8 lies 4 bytes further in the same word pair; both share
// the 32-feature chunk row / 32, so each depth row has one absmax for the fragment.
template <class Element, class Absmax>
__device__ __forceinline__ void transposed_weight_fragment(const uint8_t* packed, const Absmax& absmax, int row,
                                                           int j, const uint8_t* code, uint32_t (&a)[4]) {
  using Chunks = StageChunks<true>;
  const int t = threadIdx.x % 4;
  const int byte = (row / 2) % 4;
  const int word_pair = row / 16;  // the 8-byte unit holding bytes row / 2 and row / 2 + 4
  const int chunk = row / kChunkElements;
  // The row's nibble times 4 (its table offset) lands in bits 2..5 of the word rotated
  // right by this much: 8 * byte + 2 for a high nibble, 8 * byte - 2 (mod 32) for a
  // low one. Bits rotated in from elsewhere fall outside the 0x3c mask, so an offset
  // costs a funnel shift and a mask instead of a shift, a select, a mask and a byte
  // permute per word.
  const uint32_t rotation = (8 * byte + (row % 2 == 0 ? 2 : 30)) % 32;
  auto value = [&](uint32_t word, float scale) {
    return *reinterpret_cast<const float*>(code + (__funnelshift_r(word, word, rotation) & 0x3cu)) * scale;
  };
  float low[2][2], high[2][2];  // [depth pair member][feature row, row + 8], depths 2t.. and 2t+8..
#pragma unroll
  for (int member = 0; member < 4; ++member) {
    const int depth = 16 * j + 2 * t + (member % 2) + 8 * (member / 2);
    const uint2 words = *reinterpret_cast<const uint2*>(packed + packed_offset<true>(depth, 8 * word_pair));
    const float scale = absmax(depth, chunk);
    float* target = member / 2 == 0 ? low[member % 2] : high[member % 2];
    target[0] = value(words.x, scale);
    target[1] = value(words.y, scale);
  }
  a[0] = round_pair<Element>(low[0][0], low[1][0]);
  a[1] = round_pair<Element>(low[0][1], low[1][1]);
  a[2] = round_pair<Element>(high[0][0], high[1][0]);
  a[3] = round_pair<Element>(high[0][1], high[1][1]);
}


// The producer warpgroup: TMA for x, the packed weight and plain absmax (its first
// thread), or cp.async for the chunks' absmax (nested: nested absmax and code word),
// all completing on the stage's barrier, so no thread waits for global memory;
// stages ahead are only bounded by the ring.
template <bool kTransposed>
__device__ __forceinline__ void produce(const CUtensorMap& x_map, const CUtensorMap& w_map,
                                        const CUtensorMap& absmax_map, const WgmmaGemmParams& p,
                                        WgmmaGemmSmem& smem, const TileWork& work,
                                        int64_t steps, StageCount& counter) {
  using Barrier = cutlass::arch::ClusterTransactionBarrier;
  using Chunks = StageChunks<kTransposed>;
  const int thread = threadIdx.x - kWgmmaConsumerThreads;  // 0 .. kWgmmaCopyThreads - 1
  const QuantWeightView& w = p.weight;
  const int32_t expert = work.expert;
  const int64_t row0 = work.row0, feature0 = work.feature0;
  for (int64_t step = 0; step < steps; ++step, ++counter) {
    // The slot's previous use must be released. A fresh barrier counts as having
    // completed the phase before its first, so the first round passes at once.
    const int slot = stage_slot(counter);
    Barrier::wait(&smem.empty[slot], stage_phase(counter) ^ 1u);
    const int64_t k0 = step * kWgmmaDepth;
    if (thread == 0) {
      // Announced before this lane's arrival, so the phase cannot end without the bytes.
      constexpr uint32_t kAbsmaxBox = Chunks::kRows * kWgmmaAbsmaxPerRow * sizeof(float);
      Barrier::expect_transaction(&smem.full[slot], sizeof(smem.x[0]) + sizeof(smem.packed[0]) +
                                                        (p.absmax_by_tma ? kAbsmaxBox : 0u));
      const auto hint = static_cast<uint64_t>(cute::TMA::CacheHintSm90::EVICT_NORMAL);
      cute::SM90_TMA_LOAD_2D::copy(&x_map, &smem.full[slot], hint, smem.x[slot], static_cast<int32_t>(k0),
                                   static_cast<int32_t>(row0));
      const int64_t w_row = expert * w.dim1 + (kTransposed ? k0 : feature0);
      const int64_t w_d2 = kTransposed ? feature0 : k0;
      cute::SM90_TMA_LOAD_2D::copy(&w_map, &smem.full[slot], hint, smem.packed[slot], static_cast<int32_t>(w_d2 / 2),
                                   static_cast<int32_t>(w_row));
      // The stage's rows, the 16-byte unit holding its first block (the copy engine
      // faults on a box starting mid-unit: illegal instruction). Rows past the
      // expert's are the next expert's (finite, and they meet only zero x columns or
      // unstored features, as the packed rows do); past the last expert, zeros.
      if (p.absmax_by_tma)
        cute::SM90_TMA_LOAD_2D::copy(&absmax_map, &smem.full[slot], hint, smem.absmax[slot],
                                     static_cast<int32_t>((w_d2 >> w.blocksize_log2) & ~int64_t{3}),
                                     static_cast<int32_t>(w_row));
    }
#pragma unroll 1  // the copies do not block: nothing to overlap
    for (int index = thread; !p.absmax_by_tma && index < Chunks::kRows * Chunks::kChunksPerRow;
         index += kWgmmaCopyThreads) {
      const int row = index / Chunks::kChunksPerRow, chunk = index % Chunks::kChunksPerRow;
      // (D1, D2) of the chunk in the weight's [E, D1, D2] view; chunks outside it
      // copy zeros (finite, and they meet only zero x columns or unstored features).
      const int64_t d1 = (kTransposed ? k0 : feature0) + row;
      const int64_t d2 = (kTransposed ? feature0 : k0) + chunk * kChunkElements;
      const bool inside = d1 < w.dim1 && d2 < w.dim2;
      const int64_t block = inside ? ((expert * w.dim1 + d1) * w.dim2 + d2) >> w.blocksize_log2 : 0;
      if (!w.nested) {
        cp_async_4_fill(&smem.absmax[slot][index], w.absmax + block, inside ? 4u : 0u);
      } else {
        cp_async_4_fill(&smem.absmax[slot][index], w.nested_absmax + (block >> 8), inside ? 4u : 0u);
        const int64_t word = block & ~int64_t{3};  // the codes are 4-byte aligned (wgmma_gemm_serves)
        const int64_t valid = p.weight_blocks - word < 4 ? p.weight_blocks - word : 4;
        cp_async_4_fill(&smem.codes[slot][index], w.absmax_codes + word, inside ? static_cast<uint32_t>(valid) : 0u);
      }
    }
    cutlass::arch::cpasync_barrier_arrive_noinc(&smem.full[slot]);
  }
}

// Stores a warpgroup's accumulators (64 features x kTokens tokens) as y rows
// through its staging area, 128 tokens at a time, 16-byte stores along each
// token's features.
template <class Element, int kTokens>
__device__ __forceinline__ void store_tile(const WgmmaGemmParams& p, const float (&acc)[128], uint8_t* staging,
                                           int64_t row0, int64_t row_end, int64_t feature0) {
  const int thread = threadIdx.x % 128, warp = thread / 32, lane = thread % 32;
  const uint32_t barrier = 2 + threadIdx.x / 128;
  // stmatrix .x4 .trans: matrix k of a pair of 8-token blocks (block 2m + k / 2, feature
  // half k % 2) takes register k of every lane, the lane's (feature g + 8 half, tokens
  // 2t, 2t + 1) pair, and writes the matrix transposed: lane 8k + r names the staging
  // row of token 8 (2m + k / 2) + r, 8 features from warp * 16 + 8 (k % 2). One
  // instruction per 16 values instead of two 2-byte stores per pair.
  const int matrix = lane / 8, matrix_row = lane % 8;
  uint8_t* const row_address = staging + ((matrix / 2) * 8 + matrix_row) * kWgmmaStagingStride +
                               (warp * 16 + 8 * (matrix % 2)) * 2;
#pragma unroll
  for (int round = 0; round < kTokens / 128; ++round) {
#pragma unroll
    for (int pair_of_blocks = 0; pair_of_blocks < 8; ++pair_of_blocks) {
      uint32_t registers[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int i = 4 * (16 * round + 2 * pair_of_blocks + k / 2) + 2 * (k % 2);
        registers[k] = round_pair<Element>(acc[i], acc[i + 1]);
      }
      cute::SM90_U16x8_STSM_T::copy(registers[0], registers[1], registers[2], registers[3],
                                    *reinterpret_cast<cute::uint128_t*>(row_address + pair_of_blocks * 16 *
                                                                                          kWgmmaStagingStride));
    }
    cutlass::arch::NamedBarrier::sync(128, barrier);
    for (int index = thread; index < 128 * 8; index += 128) {
      const int token = index / 8, chunk = index % 8;
      const int64_t row = row0 + 128 * round + token;
      const int64_t feature = feature0 + chunk * 8;
      if (row >= row_end || feature >= p.cols) continue;
      const uint4 values = *reinterpret_cast<const uint4*>(staging + token * kWgmmaStagingStride + chunk * 16);
      if (p.out_vectors && feature + 8 <= p.cols) {
        // An explicit 16-byte store: the plain uint4 assignment came out as four 4-byte
        // stores (st.global.u32), a quarter of a sector each across the warp.
        __stcg(reinterpret_cast<uint4*>(static_cast<Element*>(p.out.data) + row * p.out.row_stride + feature), values);
        continue;
      }
      const uint16_t* elements = reinterpret_cast<const uint16_t*>(&values);
      for (int e = 0; e < 8 && feature + e < p.cols; ++e)
        static_cast<uint16_t*>(p.out.data)[row * p.out.row_stride + feature + e] = elements[e];
    }
    cutlass::arch::NamedBarrier::sync(128, barrier);  // staging is free again
  }
}

// The consumer warpgroups: k steps over the ring, then LoRA's rank steps, then y.
template <class Element, bool kTransposed, bool kNested, int kTokens>
__device__ __forceinline__ void consume(const WgmmaGemmParams& p, WgmmaGemmSmem& smem, const float* code,
                                        const TileWork& work, int64_t steps, StageCount counter,
                                        uint32_t& lora_chunks) {
  using Barrier = cutlass::arch::ClusterTransactionBarrier;
  const int32_t expert = work.expert;
  const int64_t row0 = work.row0, row_end = work.row_end, feature0 = work.feature0;
  const int group = threadIdx.x / 128;
  const int warp = threadIdx.x % 128 / 32, lane = threadIdx.x % 32;
  const int row = group * 64 + warp * 16 + lane / 4;  // the fragment's first row in the block's features
  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) acc[i] = 0.0f;
  const StageAbsmax<kNested> decode{&p.weight, smem.nested_code, p.weight.nested ? __ldg(p.weight.nested_offset) : 0.0f,
                           expert};
  const StageAbsmaxLayout absmax_layout = stage_absmax_layout<kTransposed>(p);

  // Dequantizes k16 step `j` of step `step` into `a`; k16 step 0 first waits for
  // the step's stage. Stage `step` of this tile is the block's stage counter + step
  // (slot and phase).
  float chunk_scale[2];  // not transposed: this thread's rows' absmax of the current 32-deep chunk
  auto dequantize_k16 = [&](int64_t step, int j, uint32_t(&a)[4]) {
    const StageCount stage = counter + static_cast<StageCount>(step);
    const int slot = stage_slot(stage);
    if (j == 0) Barrier::wait(&smem.full[slot], stage_phase(stage));
    const int64_t k0 = step * kWgmmaDepth;
    // Tile (row, chunk) of the stage at weight position (D1, D2). By TMA, the row's
    // entries are blocks from the one holding the stage's first element (D2 = d2_first);
    // copied, they are the row's chunks.
    const int64_t d2_first = kTransposed ? feature0 : k0;
    const uint32_t first_in_block = static_cast<uint32_t>(d2_first) & absmax_layout.block_mask;
    const int first_entry = static_cast<int>(static_cast<uint32_t>(d2_first >> absmax_layout.block_shift) &
                                             absmax_layout.box_mask);
    auto absmax = [&](int tile_row, int chunk) {
      const int64_t d1 = (kTransposed ? k0 : feature0) + tile_row;
      const int64_t d2 = d2_first + chunk * kChunkElements;
      const int entry = first_entry + static_cast<int>((first_in_block + static_cast<uint32_t>(chunk * kChunkElements)) >>
                                                       absmax_layout.block_shift);
      return decode(smem.absmax[slot], smem.codes[slot], tile_row * absmax_layout.row_entries + entry, d1, d2);
    };
    const uint8_t* table = reinterpret_cast<const uint8_t*>(code);
    if constexpr (kTransposed) {
      transposed_weight_fragment<Element>(smem.packed[slot], absmax, row, j, table, a);
    } else {
      if (j % 2 == 0)
#pragma unroll
        for (int half = 0; half < 2; ++half)
          chunk_scale[half] = absmax(row + 8 * half, j / 2);
      weight_fragment<Element>(smem.packed[slot], chunk_scale, row, j, table, a);
    }
  };
  // Issues the product of k16 step `j` of step `step` as one commit group.
  auto issue_k16 = [&](int64_t step, int j, const uint32_t(&a)[4]) {
    const uint64_t tile = swizzled_tile_descriptor(smem.x[stage_slot(counter + static_cast<StageCount>(step))]);
    fence_accumulators(acc);
    cute::warpgroup_arrive();
    mma<Element, kTokens>(a, tile + 2 * j, acc);
    cute::warpgroup_commit_batch();
  };
  // Every thread releases its own reads of the stage (the products of `step` are done).
  auto release_step = [&](int64_t step) {
    Barrier::arrive(&smem.empty[stage_slot(counter + static_cast<StageCount>(step))]);
  };

  // The first LoRA fragment's loads run while the main loop does (their latency
  // stalled the rank step at the tile's end).
  uint32_t lora_first[4];
  if (p.rank > 0) lora_fragment<Element>(p, expert, feature0 + row, 0, lora_first);

  // Software-pipelined by k16 steps with one fragment set per k16 step of a stage:
  // up to four products of a warpgroup run while it dequantizes the next k16 step
  // (wait<3> leaves the last three in flight and frees the set the fourth read),
  // as CUTLASS's register-sourced mainloop does. Measured even with two sets and
  // wait<1> on the H200 (bench/RESULTS.md, seventh pass); kept for the deeper queue.
  // A stage is released once the products of all its k16 steps are done, after the
  // next stage's last issue.
  uint32_t fragments[4][4];
  auto pipelined = [&](int64_t step, int j) {
    fence_fragments(fragments[j]);
    issue_k16(step, j, fragments[j]);
    cute::warpgroup_wait<3>();
    if (j == 3 && step > 0) release_step(step - 1);
    const int next = (j + 1) % 4;
    fence_fragments(fragments[next]);
    if (j < 3) dequantize_k16(step, j + 1, fragments[next]);
    else if (step + 1 < steps) dequantize_k16(step + 1, 0, fragments[next]);
  };
  dequantize_k16(0, 0, fragments[0]);
  for (int64_t step = 0; step < steps; ++step) {
    pipelined(step, 0);
    pipelined(step, 1);
    pipelined(step, 2);
    pipelined(step, 3);
  }
  cute::warpgroup_wait<0>();
  fence_accumulators(acc);
  release_step(steps - 1);

  for (int64_t j0 = 0; j0 < p.rank; j0 += kWgmmaDepth, ++lora_chunks) {
    cutlass::arch::ClusterBarrier::wait(&smem.lora_full, lora_chunks & 1u);
    const uint64_t tile = swizzled_tile_descriptor(smem.lora);
    for (int j = 0; j < 4 && j0 + 16 * j < p.rank; ++j) {
      uint32_t a[4];
      if (j0 == 0 && j == 0) {
#pragma unroll
        for (int r = 0; r < 4; ++r) a[r] = lora_first[r];
      } else {
        lora_fragment<Element>(p, expert, feature0 + row, j0 + 16 * j, a);
      }
      fence_accumulators(acc);
      cute::warpgroup_arrive();
      mma<Element, kTokens>(a, tile + 2 * j, acc);
      cute::warpgroup_commit_batch();
      cute::warpgroup_wait<0>();
      fence_accumulators(acc);
    }
    __syncwarp();  // every lane's products are done with the chunk
    if (lane == 0) cutlass::arch::ClusterBarrier::arrive(&smem.lora_empty);
  }

  store_tile<Element, kTokens>(p, acc, smem.staging[group], row0, row_end, feature0 + group * 64);
}

}  // namespace wgmma_detail

#endif  // MOEQ_WGMMA_DEVICE

template <class Element, bool kTransposed>
__global__ void __launch_bounds__(kWgmmaThreads, 1)
wgmma_gemm_kernel(const __grid_constant__ CUtensorMap x_map, const __grid_constant__ CUtensorMap w_map,
                  const __grid_constant__ CUtensorMap absmax_map, const WgmmaGemmParams p) {
#if MOEQ_WGMMA_DEVICE
  enter_chained_kernel();
  using namespace wgmma_detail;
  extern __shared__ uint8_t smem_bytes[];
  // Aligned by an offset from the shared array itself (not through an integer), so
  // the compiler still knows every access is to shared memory and emits LDS/STS;
  // through a generic pointer they were LD/ST on the long scoreboard.
  const uint32_t misalignment = static_cast<uint32_t>(__cvta_generic_to_shared(smem_bytes)) & 1023u;
  WgmmaGemmSmem& smem = *reinterpret_cast<WgmmaGemmSmem*>(smem_bytes + ((1024u - misalignment) & 1023u));

  const int64_t tiles = static_cast<int64_t>(p.schedule.tile_prefix[p.schedule.experts]) * p.feature_tiles;
  const int64_t steps = (p.depth + kWgmmaDepth - 1) / kWgmmaDepth;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kWgmmaStages; ++s) {
      cutlass::arch::ClusterTransactionBarrier::init(&smem.full[s], kWgmmaCopyThreads);
      cutlass::arch::ClusterBarrier::init(&smem.empty[s], kWgmmaConsumerThreads);
    }
    cutlass::arch::ClusterBarrier::init(&smem.lora_full, 32);
    cutlass::arch::ClusterBarrier::init(&smem.lora_empty, kWgmmaConsumerThreads / 32);
    cutlass::arch::fence_barrier_init();
  }
  // The 16 code values in static shared memory: a constant address, so each lookup
  // is one load at [nibble offset + constant].
  __shared__ float code_table[16];
  if (threadIdx.x < 16) code_table[threadIdx.x] = code_value(p.weight.format, threadIdx.x);
  if (p.weight.nested && threadIdx.x < 256) smem.nested_code[threadIdx.x] = __ldg(p.weight.nested_code + threadIdx.x);
  __syncthreads();

  // Producer and consumers walk the same tiles and count the same stages.
  StageCount counter = 0;
  uint32_t lora_chunks = 0;
  if (threadIdx.x >= kWgmmaConsumerThreads) {
    cutlass::arch::warpgroup_reg_dealloc<40>();
    if (threadIdx.x >= kWgmmaConsumerThreads + kWgmmaCopyThreads) {
      if (p.rank > 0)
        for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x)
          fill_lora_chunks<Element>(p, smem, tile_work(p, tile), lora_chunks);
      return;
    }
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x)
      produce<kTransposed>(x_map, w_map, absmax_map, p, smem, tile_work(p, tile), steps, counter);
    return;
  }
  cutlass::arch::warpgroup_reg_alloc<232>();
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, counter += static_cast<StageCount>(steps)) {
    const TileWork work = tile_work(p, tile);
    // Uniform branches: the nested decode and the token width are compiled out of
    // the loops that do not need them (predicated code still takes issue slots).
    const bool wide = work.row_end - work.row0 > 128;
    if (p.weight.nested) {
      if (wide) consume<Element, kTransposed, true, 256>(p, smem, code_table, work, steps, counter, lora_chunks);
      else consume<Element, kTransposed, true, 128>(p, smem, code_table, work, steps, counter, lora_chunks);
    } else {
      if (wide) consume<Element, kTransposed, false, 256>(p, smem, code_table, work, steps, counter, lora_chunks);
      else consume<Element, kTransposed, false, 128>(p, smem, code_table, work, steps, counter, lora_chunks);
    }
  }
#endif
}

}  // namespace moeq::cuda
