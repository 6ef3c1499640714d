// Times the tilings of the CUDA quantize and dequantize kernels side by side, next to
// the ceilings of their memory traffic, so the library can launch the fastest
// (kernels/quantize.cu, kernels/dequantize.cu). Every tiling is first checked byte
// for byte against libmoeq (whose kernels tests/test_cuda_quantize checks against the
// CPU backend) on small tensors with tails, odd pointers, NaN, zero and tiny blocks,
// then on the benchmark tensors before they are timed. bench/gpu_quant_check.sh
// builds it with nvcc against the kernel headers and libmoeq.so and runs it.
//
//   quant_tilings [--quick]     (--quick: Qwen3's tensor only, fewer repetitions)
#include "dequantize_kernel.cuh"
#include "quantize_kernel.cuh"

#include <moeq/moeq.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace moeq;
using namespace moeq::cuda;

void require(cudaError_t result, const char* what) {
  if (result == cudaSuccess) return;
  std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(result));
  std::exit(1);
}

void require_moeq(moeq_status status, const char* what) {
  if (status == MOEQ_OK) return;
  std::fprintf(stderr, "%s: %s: %s\n", what, moeq_status_name(status), moeq_last_error());
  std::exit(1);
}

// ------------------------------------------------------------ device memory

// One cudaMalloc carved into aligned pieces; reset() hands it out again.
class Arena {
 public:
  explicit Arena(size_t bytes) : bytes_(bytes) { require(cudaMalloc(&base_, bytes), "cudaMalloc"); }
  ~Arena() { cudaFree(base_); }
  char* take(size_t bytes) {
    const size_t start = (used_ + 255) / 256 * 256;
    if (start + bytes > bytes_) {
      std::fprintf(stderr, "arena of %zu bytes exhausted\n", bytes_);
      std::exit(1);
    }
    used_ = start + bytes;
    return static_cast<char*>(base_) + start;
  }
  void reset() { used_ = 0; }

 private:
  void* base_ = nullptr;
  size_t bytes_;
  size_t used_ = 0;
};

// --------------------------------------------------------------- test data

__device__ uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Normal values (Box-Muller on a hashed index) of standard deviation 1.5; with
// `special`, the first block zero, a NaN, and one block of values near 2^-30.
template <class T>
__global__ void fill_input(T* values, int64_t n, uint64_t seed, int blocksize, bool special) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const uint64_t z = mix(static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull + seed);
    const float u1 = (static_cast<float>(z >> 40) + 1.0f) * 0x1.0p-24f;
    const float u2 = static_cast<float>((z >> 16) & 0xffffff) * 0x1.0p-24f;
    float value = 1.5f * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    if (special) {
      if (i < blocksize) value = 0.0f;
      if (i == n / 3) value = NAN;
      if (i / blocksize == n / 2 / blocksize) value *= 0x1.0p-30f;
    }
    reinterpret_cast<ElementBits<T>*>(values)[i] = static_cast<ElementBits<T>>(float32_to_bits<T>(value));
  }
}

__global__ void count_differences(const uint8_t* a, const uint8_t* b, int64_t bytes,
                                  unsigned long long* count) {
  unsigned long long differing = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < bytes; i += int64_t{gridDim.x} * blockDim.x)
    differing += a[i] != b[i];
  if (differing != 0) atomicAdd(count, differing);
}

// ------------------------------------------------- quantized tensor buffers

struct Case {
  ScalarType dtype;
  Format format;
  int32_t blocksize;
  bool nested;
  int64_t numel;
  int misalign;  // 1: input and output one element, packed and codes one byte off
};

int64_t dtype_bytes(ScalarType type) { return scalar_type_bytes(type); }

// The five buffers of a quantized tensor and a workspace, as libmoeq's C API and as
// the kernels' QuantizedBuffers see them.
struct Quantized {
  Quantized(const Case& c, Arena& arena) {
    config = moeq_quant_config{sizeof(moeq_quant_config), static_cast<int32_t>(c.format), c.blocksize,
                               c.nested ? 1 : 0};
    shape[0] = c.numel;
    layout.struct_size = sizeof(layout);
    require_moeq(moeq_quantized_layout(&config, 1, shape, &layout), "moeq_quantized_layout");
    counts[0] = layout.packed_bytes;
    counts[1] = layout.absmax_count;
    counts[2] = layout.nested_absmax_count;
    counts[3] = layout.nested_code_count;
    counts[4] = layout.nested_offset_count;
    const int64_t widths[5] = {1, c.nested ? 1 : 4, 4, 4, 4};
    const DLDataType types[5] = {{kDLUInt, 8, 1}, layout.absmax_dtype, {kDLFloat, 32, 1},
                                 {kDLFloat, 32, 1}, {kDLFloat, 32, 1}};
    DLTensor* views[5] = {&q.packed, &q.absmax, &q.nested_absmax, &q.nested_code, &q.nested_offset};
    for (int i = 0; i < 5; ++i) {
      const int64_t offset = (i == 0 || (i == 1 && c.nested)) ? c.misalign : 0;
      bytes[i] = counts[i] * widths[i];
      data[i] = arena.take(static_cast<size_t>(bytes[i] + offset + 1)) + offset;
      *views[i] = DLTensor{data[i], {kDLCUDA, 0}, 1, types[i], &counts[i], nullptr, 0};
    }
    workspace_bytes = static_cast<size_t>(layout.quantize_workspace_bytes);
    workspace = workspace_bytes ? arena.take(workspace_bytes) : nullptr;
    q.struct_size = sizeof(q);
    buffers.format = c.format;
    buffers.blocksize = c.blocksize;
    buffers.nested = c.nested;
    buffers.numel = c.numel;
    buffers.packed = static_cast<uint8_t*>(data[0]);
    buffers.absmax = c.nested ? nullptr : static_cast<float*>(data[1]);
    buffers.absmax_codes = c.nested ? static_cast<uint8_t*>(data[1]) : nullptr;
    buffers.nested_absmax = c.nested ? static_cast<float*>(data[2]) : nullptr;
    buffers.nested_code = c.nested ? static_cast<float*>(data[3]) : nullptr;
    buffers.nested_offset = c.nested ? static_cast<float*>(data[4]) : nullptr;
  }

  moeq_quant_config config{};
  moeq_quant_layout layout{};
  int64_t shape[1] = {};
  int64_t counts[5] = {};
  int64_t bytes[5] = {};
  void* data[5] = {};
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  moeq_qtensor q{};
  QuantizedBuffers buffers;
};

DLDataType dl_type(ScalarType type) { return to_dl_dtype(type); }

void library_quantize(const Case& c, const void* input, Quantized& out, cudaStream_t stream) {
  int64_t shape[1] = {c.numel};
  DLTensor view{const_cast<void*>(input), {kDLCUDA, 0}, 1, dl_type(c.dtype), shape, nullptr, 0};
  require_moeq(moeq_quantize(&view, &out.config, &out.q, out.workspace, out.workspace_bytes, stream),
               "moeq_quantize");
}

void library_dequantize(const Case& c, const Quantized& in, void* output, cudaStream_t stream) {
  int64_t shape[1] = {c.numel};
  DLTensor view{output, {kDLCUDA, 0}, 1, dl_type(c.dtype), shape, nullptr, 0};
  require_moeq(moeq_dequantize(&in.q, &view, stream), "moeq_dequantize");
}

template <class Tiling>
void tiling_quantize(const Case& c, const void* input, Quantized& out, cudaStream_t stream) {
  QuantizeProblem problem;
  problem.input = input;
  problem.input_type = c.dtype;
  problem.out = out.buffers;
  quantize_tensor<Tiling>(problem, out.workspace, stream);
}

template <class Tiling>
void tiling_dequantize(const Case& c, const Quantized& in, void* output, cudaStream_t stream) {
  DequantizeProblem problem;
  problem.in = in.buffers;
  problem.output = output;
  problem.output_type = c.dtype;
  dequantize_tensor<Tiling>(problem, stream);
}

// --------------------------------------------------------------- the tilings

template <class Tiling>
std::string dequantize_name() {
  return "dequantize rows " + std::to_string(Tiling::kRows) + (Tiling::kPrefetch ? " prefetch" : "") +
         (Tiling::kStore == CacheHint::Streaming ? " streaming-st" : " default-st") + " min" +
         std::to_string(Tiling::kMinCtas) + (Tiling::kMaxCtas ? " max" + std::to_string(Tiling::kMaxCtas) : "");
}

template <class Tiling>
std::string quantize_name() {
  return "quantize " + std::to_string(Tiling::kThreads) + "x" + std::to_string(Tiling::kRows) + "x" +
         std::to_string(Tiling::kLaneVectors) + "v" + (Tiling::kPrefetch ? " prefetch" : "") +
         (Tiling::kLoad == CacheHint::Streaming ? " streaming-ld" : " default-ld") +
         (Tiling::kMinCtas ? " min" + std::to_string(Tiling::kMinCtas) : "");
}

template <class... Tilings>
struct TilingList {};

using DequantizeTilings = TilingList<
    DequantizeTiling<4, false, CacheHint::Streaming, 1, 0>,  // the kernel before this bench
    DequantizeTiling<8, true, CacheHint::Default, 2, 2>,
    DequantizeTiling<8, true, CacheHint::Streaming, 2, 2>,
    DequantizeTiling<8, true, CacheHint::Default, 2, 0>,
    DequantizeTiling<16, true, CacheHint::Default, 1, 1>,
    DequantizeTiling<4, true, CacheHint::Default, 4, 3>>;

using QuantizeTilings = TilingList<
    QuantizeTiling<256, 2, 2, false, CacheHint::Streaming, 0>,  // the kernel before this bench
    QuantizeTiling<256, 2, 2, false, CacheHint::Streaming, 5>,
    QuantizeTiling<256, 2, 2, true, CacheHint::Streaming, 0>>;

template <class... Tilings, class Body>
void for_each_tiling(TilingList<Tilings...>, Body&& body) {
  (body(Tilings{}), ...);
}

// ------------------------------------------------------- traffic ceilings

// The dequantize kernel's memory traffic without its arithmetic: per row a 4-byte
// load and a 16-byte store per thread, at the same addresses; with Prefetch the next
// tile's loads are issued before this tile's stores.
template <int Rows, bool Prefetch, CacheHint Store>
__global__ void __launch_bounds__(256, 1) expand_traffic(const unsigned int* packed, uint4* output, int64_t tiles) {
  uint32_t words[Rows], upcoming[Rows];
  const auto load = [&](int64_t tile, uint32_t (&into)[Rows]) {
#pragma unroll
    for (int r = 0; r < Rows; ++r) into[r] = __ldcs(packed + (tile * Rows + r) * 256 + threadIdx.x);
  };
  if (Prefetch && blockIdx.x < tiles) load(blockIdx.x, words);
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    if (Prefetch) {
      if (tile + gridDim.x < tiles) load(tile + gridDim.x, upcoming);
    } else {
      load(tile, words);
    }
#pragma unroll
    for (int r = 0; r < Rows; ++r)
      store_word<Store>(output + (tile * Rows + r) * 256 + threadIdx.x,
                        make_uint4(words[r], words[r] ^ 1u, words[r] ^ 2u, words[r] ^ 3u));
    if (Prefetch)
#pragma unroll
      for (int r = 0; r < Rows; ++r) words[r] = upcoming[r];
  }
}

// The quantize kernel's traffic: per row two 16-byte loads and an 8-byte store per thread.
template <int Rows>
__global__ void __launch_bounds__(256, 1) shrink_traffic(const uint4* input, uint2* packed, int64_t tiles) {
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    uint4 raw[Rows][2];
#pragma unroll
    for (int r = 0; r < Rows; ++r)
#pragma unroll
      for (int v = 0; v < 2; ++v) raw[r][v] = __ldcs(input + ((tile * Rows + r) * 256 + threadIdx.x) * 2 + v);
#pragma unroll
    for (int r = 0; r < Rows; ++r)
      __stcs(packed + (tile * Rows + r) * 256 + threadIdx.x,
             make_uint2(raw[r][0].x ^ raw[r][0].y ^ raw[r][1].x, raw[r][0].z ^ raw[r][0].w ^ raw[r][1].y));
  }
}

// Writing only: 16-byte stores over the whole output.
template <CacheHint Store>
__global__ void __launch_bounds__(256, 1) write_traffic(uint4* output, int64_t vectors) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < vectors; i += int64_t{gridDim.x} * blockDim.x)
    store_word<Store>(output + i, make_uint4(static_cast<uint32_t>(i), 1u, 2u, 3u));
}

// ------------------------------------------------------------------ timing

struct Timer {
  explicit Timer(cudaStream_t s, int reps) : stream(s), repetitions(reps) {}
  template <class Call>
  double median_us(Call&& call) {
    for (int i = 0; i < 3; ++i) call();
    std::vector<cudaEvent_t> events(2 * static_cast<size_t>(repetitions));
    for (cudaEvent_t& event : events) require(cudaEventCreate(&event), "cudaEventCreate");
    for (int i = 0; i < repetitions; ++i) {
      require(cudaEventRecord(events[2 * i], stream), "cudaEventRecord");
      call();
      require(cudaEventRecord(events[2 * i + 1], stream), "cudaEventRecord");
    }
    require(cudaStreamSynchronize(stream), "timed calls");
    std::vector<float> times(static_cast<size_t>(repetitions));
    for (int i = 0; i < repetitions; ++i)
      require(cudaEventElapsedTime(&times[i], events[2 * i], events[2 * i + 1]), "cudaEventElapsedTime");
    for (cudaEvent_t event : events) cudaEventDestroy(event);
    std::nth_element(times.begin(), times.begin() + repetitions / 2, times.end());
    return 1e3 * times[repetitions / 2];
  }
  cudaStream_t stream;
  int repetitions;
};

// Bytes a call moves as bench/quant.py counts them: the 16-bit side, the 4-bit
// payload and the stored absmax (nested: one byte per block and the nested statistics).
double stored_bytes(int64_t numel, int blocksize, bool nested) {
  const int64_t blocks = (numel + blocksize - 1) / blocksize;
  const int64_t absmax = nested ? blocks + 4 * ((blocks + 255) / 256) + 4 * 257 : 4 * blocks;
  return 2.0 * numel + static_cast<double>((numel + 1) / 2) + static_cast<double>(absmax);
}

struct Row {
  std::string tensor, what;
  double us, bytes;
  long long mismatches;  // -1: nothing to check
};

std::vector<Row> g_rows;
double g_copy_gbps = 0.0;

void report(const std::string& tensor, const std::string& what, double us, double bytes, long long mismatches) {
  g_rows.push_back(Row{tensor, what, us, bytes, mismatches});
  const double gbps = bytes / us / 1e3;
  std::printf("  %-52s %9.1f us %7.0f GB/s %6.1f%% of copy%s\n", what.c_str(), us, gbps,
              g_copy_gbps > 0 ? 100.0 * gbps / g_copy_gbps : 0.0,
              mismatches < 0 ? "" : (mismatches == 0 ? "  (checked)" : "  MISMATCH"));
  std::fflush(stdout);
}

// ---------------------------------------------------------- the two checks

struct Counter {
  Counter() { require(cudaMalloc(&device, sizeof(unsigned long long)), "cudaMalloc"); }
  ~Counter() { cudaFree(device); }
  long long count(const void* a, const void* b, int64_t bytes, cudaStream_t stream) {
    require(cudaMemsetAsync(device, 0, sizeof(unsigned long long), stream), "memset");
    if (bytes > 0)
      count_differences<<<1024, 256, 0, stream>>>(static_cast<const uint8_t*>(a), static_cast<const uint8_t*>(b),
                                                  bytes, device);
    unsigned long long host = 0;
    require(cudaMemcpyAsync(&host, device, sizeof(host), cudaMemcpyDeviceToHost, stream), "count");
    require(cudaStreamSynchronize(stream), "count");
    return static_cast<long long>(host);
  }
  unsigned long long* device = nullptr;
};

long long quantized_mismatches(const Quantized& a, const Quantized& b, Counter& counter, cudaStream_t stream) {
  long long total = 0;
  for (int i = 0; i < (a.buffers.nested ? 5 : 2); ++i) total += counter.count(a.data[i], b.data[i], a.bytes[i], stream);
  return total;
}

template <class T>
void fill(const Case& c, void* input, uint64_t seed, bool special, cudaStream_t stream) {
  fill_input<T><<<1024, 256, 0, stream>>>(static_cast<T*>(input), c.numel, seed, c.blocksize, special);
  require(cudaGetLastError(), "fill_input");
}

void fill_case(const Case& c, void* input, uint64_t seed, bool special, cudaStream_t stream) {
  dispatch_scalar(c.dtype, [&](auto scalar) { fill<decltype(scalar)>(c, input, seed, special, stream); });
}

// Every tiling against libmoeq on small tensors: tails, one-off pointers, all
// dtypes, both formats, blocksizes from 32 to 4096, plain and nested.
void check_small_tensors(cudaStream_t stream) {
  const int64_t numels[] = {1, 7, 8194, 15005, 231000, (int64_t{1} << 20) + 37};
  const int32_t blocksizes[] = {32, 64, 256, 4096};
  const ScalarType dtypes[] = {ScalarType::Float32, ScalarType::Float16, ScalarType::BFloat16};
  std::vector<long long> dequantize_wrong, quantize_wrong;
  Arena arena(size_t{64} << 20);
  Counter counter;
  int cases = 0;
  for (int64_t numel : numels)
    for (int32_t blocksize : blocksizes)
      for (ScalarType dtype : dtypes)
        for (bool nested : {false, true})
          for (int misalign : {0, 1}) {
            const Case c{dtype, (cases / 4) % 2 ? Format::FP4 : Format::NF4, blocksize, nested, numel, misalign};
            arena.reset();
            const int64_t width = dtype_bytes(dtype);
            char* input = arena.take(static_cast<size_t>((numel + 1) * width)) + misalign * width;
            char* expected = arena.take(static_cast<size_t>((numel + 1) * width)) + misalign * width;
            char* output = arena.take(static_cast<size_t>((numel + 1) * width)) + misalign * width;
            fill_case(c, input, static_cast<uint64_t>(cases) * 7919u, true, stream);
            Quantized reference(c, arena), candidate(c, arena);
            library_quantize(c, input, reference, stream);
            library_dequantize(c, reference, expected, stream);
            size_t d = 0;
            for_each_tiling(DequantizeTilings{}, [&](auto tiling) {
              if (d >= dequantize_wrong.size()) dequantize_wrong.push_back(0);
              require(cudaMemsetAsync(output, 0xff, static_cast<size_t>(numel * width), stream), "poison");
              tiling_dequantize<decltype(tiling)>(c, reference, output, stream);
              dequantize_wrong[d++] += counter.count(output, expected, numel * width, stream);
            });
            size_t q = 0;
            for_each_tiling(QuantizeTilings{}, [&](auto tiling) {
              if (q >= quantize_wrong.size()) quantize_wrong.push_back(0);
              for (int i = 0; i < 5; ++i)
                require(cudaMemsetAsync(candidate.data[i], 0xff, static_cast<size_t>(candidate.bytes[i]), stream),
                        "poison");
              tiling_quantize<decltype(tiling)>(c, input, candidate, stream);
              quantize_wrong[q++] += quantized_mismatches(candidate, reference, counter, stream);
            });
            ++cases;
          }
  std::printf("== small tensors: %d cases (tails, one-off pointers, f32/f16/bf16, nf4/fp4, blocksize 32-4096, "
              "plain/nested), bytes differing from libmoeq\n", cases);
  size_t d = 0, q = 0;
  for_each_tiling(DequantizeTilings{}, [&](auto tiling) {
    std::printf("  %-52s %lld%s\n", dequantize_name<decltype(tiling)>().c_str(), dequantize_wrong[d],
                dequantize_wrong[d] ? "  MISMATCH" : "");
    ++d;
  });
  for_each_tiling(QuantizeTilings{}, [&](auto tiling) {
    std::printf("  %-52s %lld%s\n", quantize_name<decltype(tiling)>().c_str(), quantize_wrong[q],
                quantize_wrong[q] ? "  MISMATCH" : "");
    ++q;
  });
  std::fflush(stdout);
}

// One benchmark tensor (bf16, NF4, blocksize 64): the ceilings, then every tiling,
// checked before it is timed, in two rounds to show the run-to-run spread.
void bench_tensor(const std::string& name, int64_t numel, int repetitions, cudaStream_t stream) {
  const int blocksize = 64;
  const Case plain{ScalarType::BFloat16, Format::NF4, blocksize, false, numel, 0};
  const Case nested{ScalarType::BFloat16, Format::NF4, blocksize, true, numel, 0};
  const size_t side_bytes = static_cast<size_t>(numel) * 2;
  Arena arena(4 * side_bytes + 4 * (side_bytes / 4) + (size_t{512} << 20));
  char* input = arena.take(side_bytes);
  char* expected_plain = arena.take(side_bytes);
  char* expected_nested = arena.take(side_bytes);
  char* output = arena.take(side_bytes);
  Quantized reference_plain(plain, arena), reference_nested(nested, arena);
  Quantized candidate_plain(plain, arena), candidate_nested(nested, arena);
  fill_case(plain, input, 20261129, false, stream);
  library_quantize(plain, input, reference_plain, stream);
  library_quantize(nested, input, reference_nested, stream);
  library_dequantize(plain, reference_plain, expected_plain, stream);
  library_dequantize(nested, reference_nested, expected_nested, stream);
  require(cudaStreamSynchronize(stream), "references");
  Counter counter;
  Timer timer(stream, repetitions);

  std::printf("== %s, bf16, NF4 blocksize 64, %lld elements\n", name.c_str(), static_cast<long long>(numel));
  const double copy_us = timer.median_us([&] {
    require(cudaMemcpyAsync(output, input, side_bytes, cudaMemcpyDeviceToDevice, stream), "copy");
  });
  g_copy_gbps = 2.0 * side_bytes / copy_us / 1e3;
  report(name, "copy (cudaMemcpyAsync, read + write)", copy_us, 2.0 * side_bytes, -1);
  report(name, "memset (write only)", timer.median_us([&] {
    require(cudaMemsetAsync(output, 0, side_bytes, stream), "memset");
  }), static_cast<double>(side_bytes), -1);
  const int64_t vectors = numel / 8;
  const auto write = [&](auto store) {
    constexpr auto kernel = &write_traffic<decltype(store)::value>;
    report(name, decltype(store)::value == CacheHint::Streaming ? "write 16 B/thread, streaming stores"
                                                                 : "write 16 B/thread, default stores",
           timer.median_us([&] {
             kernel<<<persistent_grid<kernel>(256, vectors / 256), 256, 0, stream>>>(
                 reinterpret_cast<uint4*>(output), vectors);
           }), static_cast<double>(side_bytes), -1);
  };
  using Streaming = std::integral_constant<CacheHint, CacheHint::Streaming>;
  using Default = std::integral_constant<CacheHint, CacheHint::Default>;
  write(Streaming{});
  write(Default{});
  const double expand_bytes = side_bytes + side_bytes / 4.0;
  int multiprocessors = 0;
  require(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, 0), "SM count");
  const auto expand = [&](auto rows, auto prefetch, auto ctas_per_sm) {
    constexpr int kRows = decltype(rows)::value;
    constexpr bool kPrefetch = decltype(prefetch)::value;
    constexpr int kCtas = decltype(ctas_per_sm)::value;
    constexpr auto kernel = &expand_traffic<kRows, kPrefetch, CacheHint::Default>;
    const int64_t tiles = vectors / (256 * kRows);
    unsigned grid = persistent_grid<kernel>(256, tiles);
    if (kCtas > 0) grid = std::min<unsigned>(grid, static_cast<unsigned>(kCtas * multiprocessors));
    report(name, "traffic of dequantize: rows " + std::to_string(kRows) + (kPrefetch ? " prefetch" : "") +
                     ", " + std::to_string(grid / multiprocessors) + " CTAs/SM",
           timer.median_us([&] {
             kernel<<<grid, 256, 0, stream>>>(reinterpret_cast<const unsigned int*>(reference_plain.data[0]),
                                              reinterpret_cast<uint4*>(output), tiles);
           }), expand_bytes, -1);
  };
  using No = std::false_type;
  using Yes = std::true_type;
  expand(std::integral_constant<int, 4>{}, No{}, std::integral_constant<int, 0>{});
  expand(std::integral_constant<int, 16>{}, No{}, std::integral_constant<int, 0>{});
  expand(std::integral_constant<int, 8>{}, Yes{}, std::integral_constant<int, 0>{});
  expand(std::integral_constant<int, 8>{}, Yes{}, std::integral_constant<int, 4>{});
  expand(std::integral_constant<int, 8>{}, Yes{}, std::integral_constant<int, 2>{});
  expand(std::integral_constant<int, 8>{}, Yes{}, std::integral_constant<int, 1>{});
  expand(std::integral_constant<int, 16>{}, Yes{}, std::integral_constant<int, 2>{});
  expand(std::integral_constant<int, 16>{}, Yes{}, std::integral_constant<int, 1>{});
  expand(std::integral_constant<int, 32>{}, Yes{}, std::integral_constant<int, 1>{});
  const auto shrink = [&](auto rows) {
    constexpr int kRows = decltype(rows)::value;
    constexpr auto kernel = &shrink_traffic<kRows>;
    const int64_t tiles = vectors / (2 * 256 * kRows);
    report(name, "traffic of quantize: rows " + std::to_string(kRows), timer.median_us([&] {
      kernel<<<persistent_grid<kernel>(256, tiles), 256, 0, stream>>>(
          reinterpret_cast<const uint4*>(input), reinterpret_cast<uint2*>(candidate_plain.data[0]), tiles);
    }), expand_bytes, -1);
  };
  shrink(std::integral_constant<int, 2>{});
  shrink(std::integral_constant<int, 4>{});

  for (int round = 1; round <= 2; ++round) {
    std::printf("  -- round %d\n", round);
    for (const Case* c : {&plain, &nested}) {
      const Quantized& reference = c->nested ? reference_nested : reference_plain;
      const char* expected = c->nested ? expected_nested : expected_plain;
      const std::string variant = c->nested ? " nested" : " plain";
      require(cudaMemsetAsync(output, 0xff, side_bytes, stream), "poison");
      library_dequantize(*c, reference, output, stream);
      const long long library_wrong = counter.count(output, expected, side_bytes, stream);
      report(name, "libmoeq dequantize" + variant, timer.median_us([&] {
        library_dequantize(*c, reference, output, stream);
      }), stored_bytes(numel, blocksize, c->nested), library_wrong);
      for_each_tiling(DequantizeTilings{}, [&](auto tiling) {
        using Tiling = decltype(tiling);
        require(cudaMemsetAsync(output, 0xff, side_bytes, stream), "poison");
        tiling_dequantize<Tiling>(*c, reference, output, stream);
        const long long wrong = counter.count(output, expected, side_bytes, stream);
        report(name, dequantize_name<Tiling>() + variant, timer.median_us([&] {
          tiling_dequantize<Tiling>(*c, reference, output, stream);
        }), stored_bytes(numel, blocksize, c->nested), wrong);
      });
    }
    for (const Case* c : {&plain, &nested}) {
      const Quantized& reference = c->nested ? reference_nested : reference_plain;
      Quantized& candidate = c->nested ? candidate_nested : candidate_plain;
      const std::string variant = c->nested ? " nested" : " plain";
      library_quantize(*c, input, candidate, stream);
      const long long library_wrong = quantized_mismatches(candidate, reference, counter, stream);
      report(name, "libmoeq quantize" + variant, timer.median_us([&] {
        library_quantize(*c, input, candidate, stream);
      }), stored_bytes(numel, blocksize, c->nested), library_wrong);
      for_each_tiling(QuantizeTilings{}, [&](auto tiling) {
        using Tiling = decltype(tiling);
        tiling_quantize<Tiling>(*c, input, candidate, stream);
        const long long wrong = quantized_mismatches(candidate, reference, counter, stream);
        report(name, quantize_name<Tiling>() + variant, timer.median_us([&] {
          tiling_quantize<Tiling>(*c, input, candidate, stream);
        }), stored_bytes(numel, blocksize, c->nested), wrong);
      });
    }
    // Where the nested path's time goes: the quantize kernel writing absmax to the
    // workspace, then the statistics (the lane pass for the mean, the encode pass).
    using First = QuantizeTiling<256, 2, 2, false, CacheHint::Streaming, 0>;
    const NestedWorkspace workspace =
        nested_workspace(candidate_nested.workspace, candidate_nested.buffers.block_count());
    report(name, "  part: quantize kernel, absmax to the workspace", timer.median_us([&] {
      QuantizeProblem problem;
      problem.input = input;
      problem.input_type = ScalarType::BFloat16;
      problem.out = candidate_nested.buffers;
      launch_quantize<First, BFloat16Bits, Format::NF4>(problem, workspace.absmax, stream);
    }), stored_bytes(numel, blocksize, true), -1);
    report(name, "  part: nested statistics (lane pass, encode pass)", timer.median_us([&] {
      quantize_statistics(workspace, candidate_nested.buffers, stream);
    }), 9.0 * candidate_nested.buffers.block_count(), -1);
    const long long parts_wrong = quantized_mismatches(candidate_nested, reference_nested, counter, stream);
    g_rows.push_back(Row{name, "nested buffers after the parts", 0.0, 0.0, parts_wrong});
    std::printf("  %-52s %s\n", "nested buffers after the parts", parts_wrong ? "MISMATCH" : "(checked)");
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  cudaDeviceProp properties{};
  require(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties");
  std::printf("device %s, %d SMs, L2 %d MB; %s\n", properties.name, properties.multiProcessorCount,
              properties.l2CacheSize >> 20, moeq_build_info());
  cudaStream_t stream = nullptr;
  require(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check_small_tensors(stream);
  bench_tensor("qwen3 gate_up 128x1536x2048", int64_t{128} * 1536 * 2048, quick ? 10 : 30, stream);
  if (!quick) bench_tensor("mixtral w1 8x28672x4096", int64_t{8} * 28672 * 4096, 20, stream);
  long long wrong = 0;
  for (const Row& row : g_rows) wrong += row.mismatches > 0 ? row.mismatches : 0;
  std::printf("== %s\n", wrong == 0 ? "every checked output matches libmoeq" : "MISMATCHES: see above");
  cudaStreamDestroy(stream);
  return wrong == 0 ? 0 : 1;
}
