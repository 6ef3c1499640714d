// CPU dequantize: code value times block absmax in float32, rounded to the output
// dtype; threaded over blocks.
#include "core/backend.hpp"
#include "cpu/nested.hpp"
#include "cpu/parallel.hpp"

#include <algorithm>

namespace moeq::cpu {
namespace {

template <class T>
void dequantize_blocks(const QuantizedBuffers& q, T* output) {
  const int64_t numel = q.numel;
  const int64_t blocksize = q.blocksize;
  const int64_t blocks = q.block_count();
  float table[16];
  for (uint32_t code = 0; code < 16; ++code) table[code] = code_value(q.format, code);
  // About 4 operations an element: look up, multiply, round, store.
  const int threads = threads_for(4.0 * static_cast<double>(numel), blocks);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t block = 0; block < blocks; ++block) {
    const float absmax = block_absmax(q, block);
    const int64_t begin = block * blocksize;
    const int64_t end = std::min(numel, begin + blocksize);
    for (int64_t i = begin; i < end; i += 2) {
      const uint8_t byte = q.packed[i / 2];
      output[i] = from_float<T>(table[high_code(byte)] * absmax);
      if (i + 1 < end) output[i + 1] = from_float<T>(table[low_code(byte)] * absmax);
    }
  }
}

}  // namespace

void dequantize(const DequantizeProblem& problem) {
  dispatch_scalar(problem.output_type, [&](auto tag) {
    using T = decltype(tag);
    dequantize_blocks(problem.in, static_cast<T*>(problem.output));
  });
}

}  // namespace moeq::cpu
