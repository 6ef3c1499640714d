// CPU quantize: blockwise absmax, NF4/FP4 encoding and nibble packing, threaded
// over blocks; nested statistics in cpu/nested.cpp.
#include "core/backend.hpp"
#include "cpu/nested.hpp"

#include <algorithm>
#include <vector>

namespace moeq::cpu {
namespace {

template <class T>
void quantize_blocks(const T* input, const QuantizedBuffers& out, float* absmax) {
  const int64_t numel = out.numel;
  const int64_t blocksize = out.blocksize;
  const int64_t blocks = out.block_count();
  const Format format = out.format;
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t begin = block * blocksize;
    const int64_t end = std::min(numel, begin + blocksize);
    float block_max = 0.0f;  // NaN never compares greater: it stays out of absmax
    for (int64_t i = begin; i < end; ++i) {
      const float value = to_float(input[i]);
      const float magnitude = value < 0.0f ? -value : value;
      if (magnitude > block_max) block_max = magnitude;
    }
    absmax[block] = block_max;
    const float scale = block_scale(block_max);
    // Blocks have even sizes and start at even offsets, so pairs never straddle them.
    for (int64_t i = begin; i < end; i += 2) {
      const uint32_t even = encode(format, to_float(input[i]) * scale);
      const uint32_t odd = i + 1 < end ? encode(format, to_float(input[i + 1]) * scale)
                                       : encode(format, 0.0f);
      out.packed[i / 2] = pack_pair(even, odd);
    }
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
    quantize_blocks(static_cast<const T*>(problem.input), out, absmax);
  });
  if (out.nested) quantize_statistics(absmax, out);
}

}  // namespace moeq::cpu
