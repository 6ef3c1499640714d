// Quantize and dequantize throughput on the CPU, in GB/s of bytes touched: the
// 4-bit payload, its block statistics and the float side (16 or 32 bits).
#include "host_buffer.hpp"
#include "sections.hpp"
#include "timing.hpp"

#include <cstdio>
#include <cstring>

namespace moeq_bench {
namespace {

struct QuantizeCase {
  int32_t format;
  bool nested;
  DLDataType dtype;
};

// A parallel copy of the float side's bytes, read + written: the ceiling these
// memory-bound ops are held against.
double copy_gb_per_s(HostBuffer& from, HostBuffer& to) {
  const int64_t bytes = from.bytes();
  const double seconds = interleaved_median_seconds(
      5, {[&] {
        const int64_t chunks = 64;
#pragma omp parallel for schedule(static)
        for (int64_t c = 0; c < chunks; ++c) {
          const int64_t begin = bytes * c / chunks, end = bytes * (c + 1) / chunks;
          std::memcpy(to.as<char>() + begin, from.as<char>() + begin,
                      static_cast<size_t>(end - begin));
        }
      }})[0];
  return 2.0 * static_cast<double>(bytes) / seconds / 1e9;
}

}  // namespace

void bench_quantize() {
  // A GLM-4.7-Flash-like stack scaled down to 8 experts: 33.5M elements.
  const std::vector<int64_t> shape = {8, 2048, 2048};
  constexpr int32_t kBlocksize = 64;
  constexpr int kRepetitions = 5;
  const QuantizeCase cases[] = {
      {MOEQ_FORMAT_NF4, false, bfloat16_type()}, {MOEQ_FORMAT_NF4, true, bfloat16_type()},
      {MOEQ_FORMAT_FP4, false, float16_type()},  {MOEQ_FORMAT_FP4, true, float16_type()},
      {MOEQ_FORMAT_NF4, false, float32_type()},
  };
  std::mt19937_64 rng(1);

  std::printf("### quantize / dequantize, shape [8, 2048, 2048], blocksize %d\n\n", kBlocksize);
  {
    HostBuffer from(bfloat16_type(), shape), to(bfloat16_type(), shape);
    from.fill_normal(rng);
    std::printf("parallel memcpy of the bf16 tensor (read + write): %.1f GB/s\n\n",
                copy_gb_per_s(from, to));
  }
  std::printf("| op | format | nested | float side | ms | GB/s |\n|---|---|---|---|---|---|\n");
  for (const QuantizeCase& c : cases) {
    HostBuffer input(c.dtype, shape), output(c.dtype, shape);
    input.fill_normal(rng);
    QuantizedBuffer quantized(c.format, kBlocksize, c.nested, shape);
    const double bytes = static_cast<double>(quantized.bytes() + input.bytes());
    const char* format = c.format == MOEQ_FORMAT_NF4 ? "nf4" : "fp4";
    const std::vector<double> seconds = interleaved_median_seconds(
        kRepetitions,
        {[&] {
           expect_ok(
               moeq_quantize(input.dl(), &quantized.config(), quantized.q(), nullptr, 0, nullptr),
               "moeq_quantize");
         },
         [&] {
           expect_ok(moeq_dequantize(quantized.q(), output.dl(), nullptr), "moeq_dequantize");
         }});
    const double quantize_s = seconds[0], dequantize_s = seconds[1];
    std::printf("| quantize | %s | %s | %s | %.1f | %.2f |\n", format, c.nested ? "yes" : "no",
                dtype_name(c.dtype), quantize_s * 1e3, bytes / quantize_s / 1e9);
    std::printf("| dequantize | %s | %s | %s | %.1f | %.2f |\n", format, c.nested ? "yes" : "no",
                dtype_name(c.dtype), dequantize_s * 1e3, bytes / dequantize_s / 1e9);
  }
}

}  // namespace moeq_bench
