// Double quantization of block statistics on the CPU.
#include "cpu/nested.hpp"

#include "core/nested.hpp"
#include "cpu/parallel.hpp"

#include <algorithm>
#include <vector>

namespace moeq::cpu {
namespace {

// The mean in the fixed order of core/nested.hpp (kMeanLanes lanes, pairwise).
float deterministic_mean(const float* values, int64_t count) {
  if (count == 0) return 0.0f;
  std::vector<double> lanes(kMeanLanes, 0.0);
  // Lane i % kMeanLanes takes element i; walking i in order keeps each lane's
  // additions in the same order as a lane-by-lane walk, with sequential reads.
  for (int64_t i = 0; i < count; ++i) lanes[i % kMeanLanes] += static_cast<double>(values[i]);
  for (int half = kMeanLanes / 2; half > 0; half /= 2)
    for (int lane = 0; lane < half; ++lane) lanes[lane] += lanes[lane + half];
  return static_cast<float>(lanes[0] / static_cast<double>(count));
}

}  // namespace

void quantize_statistics(const float* absmax, const QuantizedBuffers& out) {
  const int64_t count = out.block_count();
  const float offset = deterministic_mean(absmax, count);
  out.nested_offset[0] = offset;
  for (int i = 0; i < 256; ++i) out.nested_code[i] = nested_code_value(static_cast<uint32_t>(i));
  const auto code_at = [](int index) { return nested_code_value(static_cast<uint32_t>(index)); };
  const int64_t groups = out.nested_block_count();
  // About 30 operations a block: centre, compare, an 8-step binary search.
  const int threads = threads_for(30.0 * static_cast<double>(count), groups);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t group = 0; group < groups; ++group) {
    const int64_t begin = group * 256;
    const int64_t end = std::min(count, begin + 256);
    float group_absmax = 0.0f;
    for (int64_t i = begin; i < end; ++i) {
      const float centered = absmax[i] - offset;
      const float magnitude = centered < 0.0f ? -centered : centered;
      if (magnitude > group_absmax) group_absmax = magnitude;
    }
    out.nested_absmax[group] = group_absmax;
    const float scale = block_scale(group_absmax);
    for (int64_t i = begin; i < end; ++i)
      out.absmax_codes[i] = nested_encode((absmax[i] - offset) * scale, code_at);
  }
}

}  // namespace moeq::cpu
