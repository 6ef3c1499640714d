// The Hopper expert GEMM's shapes and shared memory (wgmma_gemm.cuh), and the
// pieces its producer, LoRA filler and consumers share: the tile a block works on
// and the 128-byte swizzle of its 16-bit operand tiles.
#pragma once

#include "dequant_tile.cuh"
#include "expert_schedule.cuh"
#include "operand_views.cuh"

#include <cstddef>
#include <cstdint>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MOEQ_WGMMA_DEVICE 1
#include <cutlass/arch/barrier.h>
#endif

namespace moeq::cuda {

constexpr int kWgmmaFeatures = 128;  // output features per block (2 warpgroups x m64)
constexpr int kWgmmaTokens = 256;    // tokens per block: the schedule's row tile
constexpr int kWgmmaDepth = 64;      // K per step: one 128-byte swizzle row of x
constexpr int kWgmmaStages = 4;
constexpr int kWgmmaConsumerThreads = 256;
// A third warpgroup produces: register budgets move by warpgroup (setmaxnreg), so
// the consumers get 232 registers and the producers 40; ptxas needs that room to
// keep the fragment sets beside the accumulators without serializing wgmma. Three
// of its warps copy absmax: one warp alone ran ~400 instructions a step (64-bit
// index arithmetic, by its SASS) on one scheduler beside two consumer warps.
constexpr int kWgmmaProducerThreads = 128;
constexpr int kWgmmaThreads = kWgmmaConsumerThreads + kWgmmaProducerThreads;
// Its last warp fills the LoRA operand tile (s x A^T), a tile ahead of its use:
// filled by the consumers at each tile's start, it held both warpgroups for its
// loads' latency (LoRA cost ~226 us of the Qwen3 gate_up forward's 1.53 ms beyond
// its projection kernel, ~10 us a tile; bench/RESULTS.md, seventh pass).
constexpr int kWgmmaCopyThreads = kWgmmaProducerThreads - 32;
// Absmax entries per tile row in a stage: a TMA box's 16 bytes.
constexpr int kWgmmaAbsmaxPerRow = 4;
// Epilogue staging rows: 64 features of 2 bytes plus 16 bytes, so the fragment
// stores of a warp fall in distinct banks.
constexpr int kWgmmaStagingStride = 64 * 2 + 16;

struct WgmmaGemmParams {
  ExpertSchedule schedule;  // row tile kWgmmaTokens
  int64_t feature_tiles;    // ceil(N / kWgmmaFeatures)
  int64_t depth;            // K
  int64_t cols;             // N
  QuantWeightView weight;   // [E, N, K], or [E, K, N] for the transposed kernel
  int64_t weight_blocks;    // absmax entries (the nested codes' length)
  int64_t rank;             // 0: no LoRA
  float lora_scale;
  StridedView lora_rows;    // x A^T: (0, row, j)
  StridedView lora_weight;  // B: (expert, feature, j)
  OutputView out;           // y, the activation dtype
  bool out_vectors;         // y 16-byte aligned with a row stride of whole vectors
  bool absmax_by_tma;       // plain absmax in TMA boxes (WgmmaGemmSmem::absmax)
};

struct WgmmaGemmSmem {
  uint8_t x[kWgmmaStages][kWgmmaTokens * kWgmmaDepth * 2];  // 128-byte swizzled token rows
  uint8_t lora[kWgmmaTokens * kWgmmaDepth * 2];             // s x A^T, same layout
  // Each warpgroup's outputs pass through here, 128 tokens at a time, so the ring
  // keeps filling for the next tile.
  uint8_t staging[2][128 * kWgmmaStagingStride];
  uint8_t packed[kWgmmaStages][kWgmmaFeatures * kWgmmaDepth / 2];
  // Each stage's absmax, one row per tile row (feature for W stored [E, N, K], depth
  // for [E, K, N]: see StageChunks). Plain absmax whose rows are whole 16-byte units
  // come by TMA with the stage: per row the 16-byte unit (four blocks) holding the
  // stage's first block ([row][4]; a box starting mid-unit faults). Otherwise
  // (nested, or rows not 16-byte multiples) the copy warps gather each 32-element
  // chunk's ([row][chunks per row]): plain, its absmax; nested, its nested absmax
  // and the 4-byte word holding its absmax code, decoded by the consumers. Those 4-byte gathers were the producer's main work: without
  // them the Qwen3 gate_up forward ran 18% faster (bench/RESULTS.md, eighth pass).
  float absmax[kWgmmaStages][kWgmmaFeatures * kWgmmaAbsmaxPerRow];
  uint32_t codes[kWgmmaStages][kWgmmaFeatures * kWgmmaDepth / kChunkElements];
  float nested_code[256];
  uint64_t full[kWgmmaStages];
  uint64_t empty[kWgmmaStages];
  uint64_t lora_full, lora_empty;  // the LoRA tile holds a rank chunk / is free again
};
// The copy engine's swizzle repeats every 256 (32B) or 512 (64B) bytes of the packed tiles.
static_assert(offsetof(WgmmaGemmSmem, packed) % 512 == 0 && sizeof(WgmmaGemmSmem::packed[0]) % 512 == 0,
              "packed stages off their swizzle alignment");
// The swizzled tiles need 1024-byte alignment; the dynamic allocation gets that much slack.
constexpr size_t kWgmmaSmemBytes = sizeof(WgmmaGemmSmem) + 1024;
static_assert(kWgmmaSmemBytes <= 227 * 1024, "more shared memory than a Hopper block may have");

namespace wgmma_detail {

// What one tile covers.
struct TileWork {
  int32_t expert;
  int64_t row0, row_end, feature0;
};

// Byte offset of 16-byte chunk `chunk` of row `row` in a 128-byte swizzled tile.
__device__ __forceinline__ uint32_t swizzled_offset(int row, int chunk) {
  return static_cast<uint32_t>(row * 128 + ((chunk ^ (row & 7)) * 16));
}

}  // namespace wgmma_detail

}  // namespace moeq::cuda
