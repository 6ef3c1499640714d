// CPU quantize: blockwise absmax, NF4/FP4 encoding and nibble packing, threaded
// over blocks; nested statistics in cpu/nested.cpp.
#include "core/backend.hpp"
#include "cpu/nested.hpp"
#include "cpu/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moeq::cpu {
namespace {

// Blocks are independent: each thread converts a block to float32 once, finds its
// absmax (a vectorized reduction), then encodes and packs it with branch-free encoders.
template <Format format, class T>
void quantize_blocks(const T* input, const QuantizedBuffers& out, float* absmax) {
  const int64_t numel = out.numel;
  const int64_t blocksize = out.blocksize;
  const int64_t blocks = out.block_count();
  // About 20 operations an element: convert, compare, encode, pack.
  const int threads = threads_for(20.0 * static_cast<double>(numel), blocks);
  ThreadScratch scratch(blocksize + 1, threads);  // allocated here, never inside the region
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t block = 0; block < blocks; ++block) {
    float* values = scratch.mine();
    const int64_t begin = block * blocksize;
    const int64_t count = std::min(numel - begin, blocksize);
    for (int64_t i = 0; i < count; ++i) values[i] = to_float(input[begin + i]);
    // NaN is kept out of absmax before the reduction, so the vectorized max gives
    // the same result in any order.
    float block_max = 0.0f;
#pragma omp simd reduction(max : block_max)
    for (int64_t i = 0; i < count; ++i) {
      const float magnitude = values[i] == values[i] ? std::fabs(values[i]) : 0.0f;
      block_max = std::max(block_max, magnitude);
    }
    absmax[block] = block_max;
    const float scale = block_scale(block_max);
    values[count] = 0.0f;  // an odd tail packs a missing 0, as bitsandbytes does
    // Blocks have even sizes and start at even offsets, so pairs never straddle them.
    uint8_t* packed = out.packed + begin / 2;
    for (int64_t pair = 0; pair < (count + 1) / 2; ++pair)
      packed[pair] = pack_pair(encode_as<format>(values[2 * pair] * scale),
                               encode_as<format>(values[2 * pair + 1] * scale));
  }
}

}  // namespace

void quantize(const QuantizeProblem& problem) {
  const QuantizedBuffers& out = problem.out;
  std::vector<float> nested_scratch;
  float* absmax = out.absmax;
  if (out.nested) {
    nested_scratch.resize(static_cast<size_t>(out.block_count()));
    absmax = nested_scratch.data();
  }
  dispatch_scalar(problem.input_type, [&](auto tag) {
    using T = decltype(tag);
    const T* input = static_cast<const T*>(problem.input);
    if (out.format == Format::NF4) quantize_blocks<Format::NF4>(input, out, absmax);
    else quantize_blocks<Format::FP4>(input, out, absmax);
  });
  if (out.nested) quantize_statistics(absmax, out);
}

}  // namespace moeq::cpu
