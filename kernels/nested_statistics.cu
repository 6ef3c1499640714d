// Nested statistics on the GPU: the mean of absmax in core/nested.hpp's fixed order
// (kMeanLanes lane sums, then pairwise halving), then per group of 256 blocks the
// absmax of (absmax - mean) and the 8-bit code of each block.
#include "core/nested.hpp"
#include "cuda_check.cuh"
#include "launch_grid.cuh"
#include "nested_statistics.cuh"

#include <moeq/moeq.h>

namespace moeq::cuda {
namespace {

// Lane sums: CTA c owns lanes [8c, 8c + 8). Its threads split each lane's values
// absmax[lane + k * kMeanLanes] by k into kLanePhases phases, so a warp reads four
// whole 32-byte sectors per step and 128 CTAs stream the array in parallel.
constexpr int kLanesPerCta = 8;
constexpr int kLaneSumThreads = 1024;
constexpr int kLanePhases = kLaneSumThreads / kLanesPerCta;
constexpr int kLaneBatch = 16;
static_assert(kMeanLanes % kLanesPerCta == 0, "CTAs cover the lanes");

// Any summation order gives core/nested.hpp's double when no partial sum rounds:
// the values are multiples of the smallest one's ulp q, so every partial sum below
// 2^53 q is exact. A computed total below 2^52 q proves it, since a total that had
// rounded would be >= 2^53 q less a relative error far smaller than one half.
__device__ bool sum_is_exact(double total, float smallest_nonzero) {
  if (!(smallest_nonzero < INFINITY)) return total == 0.0;
  const int biased_exponent = static_cast<int>(__float_as_uint(smallest_nonzero) >> 23);
  const int ulp_log2 = biased_exponent == 0 ? -149 : biased_exponent - 150;
  return total < ldexp(1.0, ulp_log2 + 52);
}

__global__ void __launch_bounds__(kLaneSumThreads)
    lane_sums_kernel(const float* absmax, int64_t count, double* lane_sums) {
  __shared__ double sums[kLanePhases][kLanesPerCta];
  __shared__ float smallest[kLanePhases][kLanesPerCta];
  const int column = threadIdx.x % kLanesPerCta;
  const int phase = threadIdx.x / kLanesPerCta;
  const int64_t lane = int64_t{blockIdx.x} * kLanesPerCta + column;
  const int64_t step = int64_t{kLanePhases} * kMeanLanes;
  double sum = 0.0;
  float least = INFINITY;
  // Batches of independent loads keep kLaneBatch reads in flight per thread; the
  // zeros past the end change neither the sum nor the smallest value.
  for (int64_t i = lane + int64_t{phase} * kMeanLanes; i < count; i += kLaneBatch * step) {
    float batch[kLaneBatch];
#pragma unroll
    for (int b = 0; b < kLaneBatch; ++b) batch[b] = i + b * step < count ? absmax[i + b * step] : 0.0f;
#pragma unroll
    for (int b = 0; b < kLaneBatch; ++b) {
      sum += batch[b];
      if (batch[b] > 0.0f) least = fminf(least, batch[b]);
    }
  }
  sums[phase][column] = sum;
  smallest[phase][column] = least;
  __syncthreads();
  for (int half = kLanePhases / 2; half > 0; half /= 2) {
    if (phase < half) {
      sums[phase][column] += sums[phase + half][column];
      smallest[phase][column] = fminf(smallest[phase][column], smallest[phase + half][column]);
    }
    __syncthreads();
  }
  if (phase != 0) return;
  double total = sums[0][column];
  if (!sum_is_exact(total, smallest[0][column])) {
    // Rounding happened (values spanning a huge range, or an infinity): the exact
    // order of core/nested.hpp, one value after the other.
    total = 0.0;
    for (int64_t i = lane; i < count; i += kLaneBatch * kMeanLanes) {
      float batch[kLaneBatch];
#pragma unroll
      for (int b = 0; b < kLaneBatch; ++b)
        batch[b] = i + b * kMeanLanes < count ? absmax[i + b * kMeanLanes] : 0.0f;
#pragma unroll
      for (int b = 0; b < kLaneBatch; ++b) total += batch[b];
    }
  }
  lane_sums[lane] = total;
}

// The 8-bit codes: one warp per group of MOEQ_NESTED_BLOCKSIZE blocks; lane l holds
// blocks 4l..4l+3 and 128+4l..128+4l+3 of the group (two 16-byte loads).
constexpr int kEncodeThreads = 256;
constexpr int kGroupsPerCta = kEncodeThreads / 32;
constexpr int kGroupBlocks = MOEQ_NESTED_BLOCKSIZE;
static_assert(kGroupBlocks == 2 * 4 * 32, "a warp holds a group in two rows of four blocks per lane");
static_assert(kEncodeThreads == MOEQ_NESTED_CODE_SIZE, "one thread per code of the map");

// The 8-bit map, built on the host: indexing core/nested.hpp's table at run time
// on the device would copy it to every thread's stack.
struct NestedCodeMap {
  float values[MOEQ_NESTED_CODE_SIZE];
};

// Where map entry `index` sits in shared memory: at its 8-bit reversal. The binary
// search's pivots of one depth differ in their high bits, so reversed they fall in
// different banks and a warp's lanes searching for different codes do not queue on
// one bank (in index order the pivots of depths 1 to 3 all sit in bank 31 or 15).
__device__ __forceinline__ unsigned map_slot(unsigned index) { return __brev(index) >> 24; }

NestedCodeMap nested_code_map() {
  NestedCodeMap map{};
  for (int i = 0; i < MOEQ_NESTED_CODE_SIZE; ++i) map.values[i] = nested_code_value(static_cast<uint32_t>(i));
  return map;
}

struct NestedOutputs {
  uint8_t* codes;  // [count]
  float* nested_absmax;
  float* nested_code;
  float* nested_offset;
  bool codes_aligned;  // 4-byte aligned: four codes store as one word
};

__global__ void __launch_bounds__(kEncodeThreads)
    nested_encode_kernel(const double* lane_sums, const float* absmax, int64_t count,
                         const NestedCodeMap map, const NestedOutputs out) {
  __shared__ double lanes[kMeanLanes];
  __shared__ float code_table[MOEQ_NESTED_CODE_SIZE];
  for (int i = threadIdx.x; i < kMeanLanes; i += kEncodeThreads) lanes[i] = lane_sums[i];
  code_table[map_slot(threadIdx.x)] = map.values[threadIdx.x];
  __syncthreads();
  // Every CTA finishes the mean itself (8 KB from L2): no grid-wide barrier needed.
  for (int half = kMeanLanes / 2; half > 0; half /= 2) {
    for (int i = threadIdx.x; i < half; i += kEncodeThreads) lanes[i] += lanes[i + half];
    __syncthreads();
  }
  const float offset = count == 0 ? 0.0f : __double2float_rn(lanes[0] / static_cast<double>(count));
  if (blockIdx.x == 0) {
    out.nested_code[threadIdx.x] = map.values[threadIdx.x];
    if (threadIdx.x == 0) out.nested_offset[0] = offset;
  }

  const auto code_at = [&](int index) { return code_table[map_slot(static_cast<unsigned>(index))]; };
  const int lane = threadIdx.x % 32;
  const int64_t groups = (count + kGroupBlocks - 1) / kGroupBlocks;
  for (int64_t group = int64_t{blockIdx.x} * kGroupsPerCta + threadIdx.x / 32; group < groups;
       group += int64_t{gridDim.x} * kGroupsPerCta) {
    int64_t first[2];
    float centered[2][4];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      first[h] = group * kGroupBlocks + h * (kGroupBlocks / 2) + 4 * lane;
      float value[4];
      if (first[h] + 4 <= count) {
        const float4 v = *reinterpret_cast<const float4*>(absmax + first[h]);
        value[0] = v.x, value[1] = v.y, value[2] = v.z, value[3] = v.w;
      } else {
        // Blocks past the end read as NaN, which the maximum below ignores.
#pragma unroll
        for (int j = 0; j < 4; ++j) value[j] = first[h] + j < count ? absmax[first[h] + j] : NAN;
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) centered[h][j] = __fsub_rn(value[j], offset);
    }
    float group_max = 0.0f;
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int j = 0; j < 4; ++j) group_max = fmaxf(group_max, fabsf(centered[h][j]));
#pragma unroll
    for (int offset_lane = 16; offset_lane > 0; offset_lane /= 2)
      group_max = fmaxf(group_max, __shfl_xor_sync(0xffffffffu, group_max, offset_lane));
    if (lane == 0) out.nested_absmax[group] = group_max;
    const float scale = block_scale(group_max);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t word = 0;
#pragma unroll
      for (int j = 0; j < 4; ++j)
        word |= uint32_t{nested_encode(__fmul_rn(centered[h][j], scale), code_at)} << (8 * j);
      if (out.codes_aligned && first[h] + 4 <= count) {
        *reinterpret_cast<uint32_t*>(out.codes + first[h]) = word;
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j)
          if (first[h] + j < count) out.codes[first[h] + j] = static_cast<uint8_t>(word >> (8 * j));
      }
    }
  }
}

}  // namespace

void quantize_statistics(const NestedWorkspace& workspace, const QuantizedBuffers& out,
                         cudaStream_t stream) {
  const int64_t count = out.block_count();
  lane_sums_kernel<<<kMeanLanes / kLanesPerCta, kLaneSumThreads, 0, stream>>>(
      workspace.absmax, count, workspace.lane_sums);
  check_launch("lane_sums_kernel");
  const NestedOutputs outputs{out.absmax_codes, out.nested_absmax, out.nested_code,
                              out.nested_offset,
                              reinterpret_cast<uintptr_t>(out.absmax_codes) % 4 == 0};
  static const NestedCodeMap map = nested_code_map();
  const int64_t ctas = ceil_div(out.nested_block_count(), kGroupsPerCta);
  nested_encode_kernel<<<persistent_grid<&nested_encode_kernel>(kEncodeThreads, ctas),
                         kEncodeThreads, 0, stream>>>(workspace.lane_sums, workspace.absmax,
                                                      count, map, outputs);
  check_launch("nested_encode_kernel");
}

}  // namespace moeq::cuda
