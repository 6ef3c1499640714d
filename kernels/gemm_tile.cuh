// Tile shapes of the expert GEMM kernels and how each activation dtype feeds the
// tensor cores (the 16-bit operand type, and how many 16-bit terms a value is split into).
#pragma once

#include "core/scalar.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace moeq::cuda {

// A block computes a kRows x kCols output tile in steps of kDepth along the reduced
// dimension, with kWarpsRows x kWarpsCols warps; each warp owns a
// (kRows / kWarpsRows) x (kCols / kWarpsCols) sub-tile made of m16n8k16 products.
// kMinBlocks: blocks per SM the register budget must allow (__launch_bounds__).
template <int Rows, int Cols, int Depth, int WarpsRows, int WarpsCols, int MinBlocks = 1>
struct TileShape {
  static constexpr int kMinBlocks = MinBlocks;
  static constexpr int kRows = Rows;
  static constexpr int kCols = Cols;
  static constexpr int kDepth = Depth;
  static constexpr int kWarpsRows = WarpsRows;
  static constexpr int kWarpsCols = WarpsCols;
  static constexpr int kThreads = 32 * WarpsRows * WarpsCols;
  static constexpr int kWarpRows = Rows / WarpsRows;
  static constexpr int kWarpCols = Cols / WarpsCols;
  static constexpr int kMmaRows = kWarpRows / 16;  // m16 tiles per warp
  static constexpr int kMmaCols = kWarpCols / 8;   // n8 tiles per warp
  static_assert(kWarpRows % 16 == 0, "a warp's rows must be whole m16 tiles");
  static_assert(kWarpCols % 16 == 0, "a warp's columns must be pairs of n8 tiles (ldmatrix.x4)");
  static_assert(Depth % 32 == 0, "the depth must be whole 4-bit chunks (32 elements)");
};

// Rows of x per (expert, row tile) work item, chosen per call from the mean rows per
// expert: training-sized groups take tall tiles (each dequantized weight tile feeds
// 128 rows of products), decode-sized groups one m16 tile (no products on padding).
// The schedule is built for the row tile of the call, and every row-tiled kernel of
// the call is instantiated for it.
constexpr int kTrainingRowTile = 128;
constexpr int kDecodeRowTile = 16;
// Mean rows per expert below which a call takes the decode row tile.
constexpr int64_t kDecodeMeanRows = 32;

// Forward y = x W^T and backward dX = dY W: the dequantizing GEMM. 8 warps of 64 x 32
// keep the 4-bit weight tile (one 32-element chunk per thread and step) small next
// to the products it feeds; 2 blocks per SM hide the loads of the next step.
using DequantGemmShape = TileShape<kTrainingRowTile, 128, 64, 2, 4, 2>;
// x A^T and dY B: the rank-r projections (r <= 256, so narrow column tiles). Each
// depth step waits for one round trip of the factor's element loads, so the steps
// are deep; the decode tile, with few rows to share a factor tile, splits its
// columns over two warps to keep the per-thread loads at 64.
using TrainingProjectShape = TileShape<kTrainingRowTile, 32, 64, 4, 1>;
using DecodeProjectShape = TileShape<kDecodeRowTile, 32, 128, 1, 2>;
// dA = s (dY B)^T x and dB = s dY^T (x A^T): reductions over an expert's rows.
using LoraGradShape = TileShape<64, 64, 32, 2, 2>;

// Shared-memory rows are padded by one 16-byte vector so that the eight row
// addresses of an ldmatrix land in distinct banks.
constexpr int kSmemPadElements = 8;

// How values of an activation dtype enter the tensor cores: the 16-bit type, and
// the number of terms. float32 is split as hi = bf16(v), lo = bf16(v - hi) and a
// product is hi*hi + hi*lo + lo*hi ("bf16x3": ~2^-16 relative error, one mma atom
// for every dtype).
template <class Activation>
struct OperandOf;
template <>
struct OperandOf<BFloat16Bits> {
  using Element = __nv_bfloat16;
  static constexpr int kTerms = 1;
};
template <>
struct OperandOf<Float16Bits> {
  using Element = __half;
  static constexpr int kTerms = 1;
};
template <>
struct OperandOf<float> {
  using Element = __nv_bfloat16;
  static constexpr int kTerms = 2;
};

template <class Element>
__device__ __forceinline__ Element round_to(float value);
template <>
__device__ __forceinline__ __nv_bfloat16 round_to<__nv_bfloat16>(float value) {
  return __float2bfloat16_rn(value);
}
template <>
__device__ __forceinline__ __half round_to<__half>(float value) {
  return __float2half_rn(value);
}

__device__ __forceinline__ uint16_t element_bits(__nv_bfloat16 value) {
  return __bfloat16_as_ushort(value);
}
__device__ __forceinline__ uint16_t element_bits(__half value) { return __half_as_ushort(value); }

// Two 16-bit elements as one 32-bit register, `first` in the low half (the order
// of consecutive elements in memory and in mma fragments).
template <class Element>
__device__ __forceinline__ uint32_t pack_elements(Element first, Element second) {
  return static_cast<uint32_t>(element_bits(first)) |
         static_cast<uint32_t>(element_bits(second)) << 16;
}

// Two float32 values rounded to a 16-bit pair by one paired conversion
// (cvt.rn.bf16x2.f32 / f16x2), `first` in the low half.
template <class Element>
__device__ __forceinline__ uint32_t round_pair(float first, float second);
template <>
__device__ __forceinline__ uint32_t round_pair<__nv_bfloat16>(float first, float second) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(first, second);
  return pack_elements(pair.x, pair.y);
}
template <>
__device__ __forceinline__ uint32_t round_pair<__half>(float first, float second) {
  const __half2 pair = __floats2half2_rn(first, second);
  return pack_elements(pair.x, pair.y);
}

// The terms of `value` for an operand with Operand::kTerms terms.
template <class Operand>
__device__ __forceinline__ void split_terms(float value,
                                            typename Operand::Element (&terms)[Operand::kTerms]) {
  using Element = typename Operand::Element;
  terms[0] = round_to<Element>(value);
  if constexpr (Operand::kTerms == 2) terms[1] = round_to<Element>(value - static_cast<float>(terms[0]));
}

// A shared-memory operand tile: Operand::kTerms planes of Rows x Cols 16-bit values,
// rows padded. Which of (output index, reduced index) is the row is the kernel's
// choice; the mma fragment loaders take it as a template flag.
template <class Operand, int Rows, int Cols>
struct alignas(16) SmemTile {
  using OperandType = Operand;
  using Element = typename Operand::Element;
  static constexpr int kRows = Rows;
  static constexpr int kCols = Cols;
  static constexpr int kStride = Cols + kSmemPadElements;
  Element data[Operand::kTerms][Rows][kStride];
};

}  // namespace moeq::cuda
