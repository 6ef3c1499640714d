// GPU quantize and dequantize: byte-identical to the CPU backend, bit-identical
// dequantization of bitsandbytes' golden vectors, CUDA graph capture, workspace
// errors and tensors of more than 2^31 elements. Skipped where no GPU is visible.
#include "support/golden.hpp"
#include "support/host_tensor.hpp"

#include <doctest/doctest.h>
#include <moeq/moeq.h>

#if MOEQ_WITH_CUDA
#include "core/format.hpp"
#include "core/nested.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace moeq_test;

namespace {

#define REQUIRE_CUDA_OK(call) REQUIRE_MESSAGE((call) == cudaSuccess, #call)
#define REQUIRE_MOEQ_OK(call)                       \
  do {                                              \
    const moeq_status status_ = (call);             \
    INFO(std::string(moeq_last_error()));                        \
    REQUIRE(status_ == MOEQ_OK);                    \
  } while (0)

bool skip_without_gpu() {
  if (moeq_cuda_available() != 0) return false;
  MESSAGE("skipped: no GPU visible");
  return true;
}

// MOEQ_TEST_QUICK=1 (the compute-sanitizer runs) keeps a representative subset.
bool quick() {
  const char* value = std::getenv("MOEQ_TEST_QUICK");
  return value != nullptr && std::string(value) == "1";
}

bool same_dtype(DLDataType a, DLDataType b) {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

// Device memory of `bytes` bytes (at least one, so empty tensors get a pointer).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    REQUIRE_CUDA_OK(cudaMalloc(&data_, std::max<size_t>(bytes, 1)));
    poison();
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  ~DeviceBuffer() {
    if (data_ != nullptr) cudaFree(data_);
  }

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // All bytes 0xFF: NaN for every float dtype, so unwritten outputs show.
  void poison() { REQUIRE_CUDA_OK(cudaMemset(data_, 0xFF, std::max<size_t>(bytes_, 1))); }
  void upload(const void* source, size_t bytes, size_t offset = 0) {
    REQUIRE_CUDA_OK(cudaMemcpy(static_cast<char*>(data_) + offset, source, bytes, cudaMemcpyHostToDevice));
  }
  std::vector<uint8_t> download(size_t offset = 0, size_t bytes = SIZE_MAX) const {
    bytes = std::min(bytes, bytes_ - offset);
    std::vector<uint8_t> host(bytes);
    REQUIRE_CUDA_OK(cudaMemcpy(host.data(), static_cast<const char*>(data_) + offset, bytes, cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// A contiguous device tensor; `byte_offset` shifts its data to test unaligned views.
struct DeviceTensor {
  DeviceTensor(DLDataType dtype, std::vector<int64_t> sizes, uint64_t byte_offset = 0)
      : shape(std::move(sizes)) {
    int64_t count = 1;
    for (int64_t size : shape) count *= size;
    buffer = DeviceBuffer(static_cast<size_t>(count) * dtype.bits / 8 + byte_offset);
    dl = DLTensor{buffer.data(), {kDLCUDA, 0}, static_cast<int32_t>(shape.size()), dtype,
                  shape.data(), nullptr, byte_offset};
  }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;

  void upload(const HostTensor& host) {
    buffer.upload(host.dl()->data, payload_bytes(), dl.byte_offset);
  }
  std::vector<uint8_t> download() const { return buffer.download(dl.byte_offset, payload_bytes()); }
  size_t payload_bytes() const { return buffer.bytes() - dl.byte_offset; }

  std::vector<int64_t> shape;
  DeviceBuffer buffer;
  DLTensor dl{};
};

// The five device buffers of a quantized tensor, sized by moeq_quantized_layout.
class DeviceQTensor {
 public:
  DeviceQTensor(int32_t format, int32_t blocksize, bool nested, const std::vector<int64_t>& shape,
                DLDataType dtype, uint64_t packed_byte_offset = 0) {
    config_ = moeq_quant_config{sizeof(moeq_quant_config), format, blocksize, nested ? 1 : 0};
    layout_.struct_size = sizeof(layout_);
    REQUIRE_MOEQ_OK(moeq_quantized_layout(&config_, static_cast<int32_t>(shape.size()), shape.data(), &layout_));
    const int64_t counts[5] = {layout_.packed_bytes, layout_.absmax_count, layout_.nested_absmax_count,
                               layout_.nested_code_count, layout_.nested_offset_count};
    std::copy(counts, counts + 5, counts_);
    const DLDataType dtypes[5] = {uint8_type(), layout_.absmax_dtype, float32_type(), float32_type(),
                                  float32_type()};
    q_ = qtensor_header(format, blocksize, nested, shape, dtype);
    DLTensor* views[5] = {&q_.packed, &q_.absmax, &q_.nested_absmax, &q_.nested_code, &q_.nested_offset};
    for (int i = 0; i < 5; ++i) {
      const uint64_t offset = i == 0 ? packed_byte_offset : 0;
      buffers_[i] = DeviceBuffer(static_cast<size_t>(counts_[i]) * dtypes[i].bits / 8 + offset);
      *views[i] = DLTensor{buffers_[i].data(), {kDLCUDA, 0}, 1, dtypes[i], &counts_[i], nullptr, offset};
    }
  }

  moeq_qtensor* q() { return &q_; }
  const moeq_quant_config* config() const { return &config_; }
  const moeq_quant_layout& layout() const { return layout_; }
  void poison() {
    for (DeviceBuffer& buffer : buffers_) buffer.poison();
  }
  // Buffer i (0 packed, 1 absmax, 2 nested_absmax, 3 nested_code, 4 nested_offset).
  std::vector<uint8_t> download(int i, int64_t offset = 0, int64_t bytes = INT64_MAX) const {
    const DLTensor* views[5] = {&q_.packed, &q_.absmax, &q_.nested_absmax, &q_.nested_code, &q_.nested_offset};
    return buffers_[i].download(views[i]->byte_offset + static_cast<size_t>(offset),
                                static_cast<size_t>(bytes));
  }
  void upload(int i, const std::vector<uint8_t>& bytes) {
    const DLTensor* views[5] = {&q_.packed, &q_.absmax, &q_.nested_absmax, &q_.nested_code, &q_.nested_offset};
    buffers_[i].upload(bytes.data(), bytes.size(), views[i]->byte_offset);
  }

 private:
  moeq_quant_config config_{};
  moeq_quant_layout layout_{};
  int64_t counts_[5] = {};
  DeviceBuffer buffers_[5];
  moeq_qtensor q_{};
};

const char* kBufferNames[5] = {"packed", "absmax", "nested_absmax", "nested_code", "nested_offset"};

std::vector<uint8_t> host_bytes(HostTensor& tensor, size_t bytes) {
  return std::vector<uint8_t>(tensor.bytes().begin(), tensor.bytes().begin() + static_cast<ptrdiff_t>(bytes));
}

std::vector<uint8_t> host_buffer(HostQTensor& q, int i) {
  HostTensor* buffers[5] = {&q.packed, &q.absmax, &q.nested_absmax, &q.nested_code, &q.nested_offset};
  const DLTensor* view = buffers[i]->dl();
  return host_bytes(*buffers[i], static_cast<size_t>(buffers[i]->numel() * view->dtype.bits / 8));
}

// Index of the first differing byte, or -1.
int64_t first_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return static_cast<int64_t>(std::min(a.size(), b.size()));
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  return -1;
}

// Float outputs compared bit for bit, except that any NaN equals any NaN: NaN
// payloads come from the hardware (x86 and the GPU make different default NaNs).
int64_t first_float_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b,
                               DLDataType dtype) {
  if (a.size() != b.size()) return 0;
  const size_t width = dtype.bits / 8;
  for (size_t i = 0; i < a.size(); i += width) {
    if (std::memcmp(&a[i], &b[i], width) == 0) continue;
    const auto is_nan = [&](const uint8_t* p) {
      if (width == 4) { float v; std::memcpy(&v, p, 4); return std::isnan(v); }
      uint16_t bits; std::memcpy(&bits, p, 2);
      return dtype.code == kDLBfloat ? (bits & 0x7fffu) > 0x7f80u : (bits & 0x7fffu) > 0x7c00u;
    };
    if (is_nan(&a[i]) && is_nan(&b[i])) continue;
    return static_cast<int64_t>(i / width);
  }
  return -1;
}

const char* dtype_label(DLDataType dtype) {
  if (same_dtype(dtype, float32_type())) return "float32";
  if (same_dtype(dtype, float16_type())) return "float16";
  return "bfloat16";
}

// Normal values with, when `special` is set, the cases the formats define: an
// all-zero block, NaNs, a block of values so small that 1/absmax overflows, and
// (when `infinite`) an infinity.
HostTensor random_input(DLDataType dtype, const std::vector<int64_t>& shape, int32_t blocksize,
                        bool special, bool infinite, std::mt19937_64& rng) {
  HostTensor input(dtype, shape);
  input.fill_normal(rng, 1.5);
  const int64_t n = input.numel();
  if (!special || n == 0) return input;
  for (int64_t i = 0; i < std::min<int64_t>(blocksize, n); ++i) input.set_flat(i, 0.0);
  std::uniform_int_distribution<int64_t> any(0, n - 1);
  input.set_flat(any(rng), std::numeric_limits<double>::quiet_NaN());
  input.set_flat(any(rng), -std::numeric_limits<double>::quiet_NaN());
  const int64_t tiny_block = any(rng) / blocksize * blocksize;
  // bf16 and float32 have subnormals below 2^-128 (float16's smallest is 2^-24).
  const double tiny = same_dtype(dtype, float16_type()) ? std::ldexp(1.0, -24) : std::ldexp(1.0, -133);
  for (int64_t i = tiny_block; i < std::min(n, tiny_block + blocksize); ++i)
    input.set_flat(i, (i % 3 == 0 ? -tiny : tiny) * static_cast<double>(i % 5));
  if (infinite) input.set_flat(any(rng), -std::numeric_limits<double>::infinity());
  return input;
}

struct QuantCase {
  int32_t format;
  DLDataType dtype;
  int32_t blocksize;
  bool nested;
  std::vector<int64_t> shape;
  DLDataType output_dtype;
  bool special = true;
  bool infinite = false;
  bool caller_workspace = false;
  uint64_t misalign_bytes = 0;  // shifts input, packed and output off their alignment
};

std::string describe(const QuantCase& c) {
  std::string text = std::string(c.format == MOEQ_FORMAT_NF4 ? "nf4" : "fp4") + " " +
                     dtype_label(c.dtype) + " -> " + dtype_label(c.output_dtype) + " blocksize " +
                     std::to_string(c.blocksize) + (c.nested ? " nested" : " plain") + " shape [";
  for (size_t i = 0; i < c.shape.size(); ++i) text += (i ? "," : "") + std::to_string(c.shape[i]);
  text += "]";
  if (c.infinite) text += " with inf";
  if (c.caller_workspace) text += " caller workspace";
  if (c.misalign_bytes) text += " misaligned";
  return text;
}

// Quantizes and dequantizes on the CPU and on the GPU and compares every buffer.
void check_against_cpu(const QuantCase& c, std::mt19937_64& rng) {
  CAPTURE(describe(c));
  HostTensor input = random_input(c.dtype, c.shape, c.blocksize, c.special, c.infinite, rng);
  HostQTensor cpu(c.format, c.blocksize, c.nested, c.shape, c.dtype);
  quantize_into(input, cpu);

  DeviceTensor device_input(c.dtype, c.shape, c.misalign_bytes * (c.dtype.bits / 8));
  device_input.upload(input);
  DeviceQTensor gpu(c.format, c.blocksize, c.nested, c.shape, c.dtype, c.misalign_bytes);
  DeviceBuffer workspace(static_cast<size_t>(gpu.layout().quantize_workspace_bytes));
  REQUIRE_MOEQ_OK(moeq_quantize(&device_input.dl, gpu.config(), gpu.q(),
                                c.caller_workspace ? workspace.data() : nullptr,
                                c.caller_workspace ? workspace.bytes() : 0, nullptr));
  REQUIRE_CUDA_OK(cudaDeviceSynchronize());
  for (int i = 0; i < (c.nested ? 5 : 2); ++i) {
    INFO("buffer " << std::string(kBufferNames[i]));
    CHECK(first_difference(gpu.download(i), host_buffer(cpu, i)) == -1);
  }

  HostTensor cpu_output(c.output_dtype, c.shape);
  REQUIRE_MOEQ_OK(moeq_dequantize(cpu.q(), cpu_output.dl(), nullptr));
  DeviceTensor gpu_output(c.output_dtype, c.shape, c.misalign_bytes * (c.output_dtype.bits / 8));
  REQUIRE_MOEQ_OK(moeq_dequantize(gpu.q(), &gpu_output.dl, nullptr));
  REQUIRE_CUDA_OK(cudaDeviceSynchronize());
  const size_t output_bytes = gpu_output.payload_bytes();
  CHECK(first_float_difference(gpu_output.download(), host_bytes(cpu_output, output_bytes),
                               c.output_dtype) == -1);
}

const std::vector<DLDataType>& float_dtypes() {
  static const std::vector<DLDataType> dtypes = {float32_type(), float16_type(), bfloat16_type()};
  return dtypes;
}

std::vector<int32_t> blocksizes() {
  if (quick()) return {32, 256, 4096};
  return {32, 64, 128, 256, 512, 1024, 2048, 4096};
}

std::vector<std::vector<int64_t>> shapes() {
  // Empty, single, odd counts, partial blocks and vectors, several 8192-element
  // tiles with a partial last one, 3-D expert-like.
  if (quick()) return {{0}, {7}, {2, 4097}, {3, 100, 77}};
  return {{0}, {1}, {7}, {64}, {3, 5, 7}, {2, 4097}, {5, 3001}, {3, 1000, 77}, {4, 64, 512}};
}

}  // namespace

TEST_CASE("GPU quantize writes the CPU's bytes and GPU dequantize the CPU's bits") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(20261129);
  int cases = 0;
  for (int32_t format : {MOEQ_FORMAT_NF4, MOEQ_FORMAT_FP4})
    for (const DLDataType& dtype : float_dtypes())
      for (int32_t blocksize : blocksizes())
        for (bool nested : {false, true})
          for (const std::vector<int64_t>& shape : shapes()) {
            QuantCase c{format, dtype, blocksize, nested, shape, float_dtypes()[cases % 3]};
            c.caller_workspace = cases % 2 == 1;
            check_against_cpu(c, rng);
            ++cases;
          }
  MESSAGE(cases << " cases compared");
}

TEST_CASE("an infinite input gives the CPU's bytes, infinite absmax included") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(7);
  for (int32_t format : {MOEQ_FORMAT_NF4, MOEQ_FORMAT_FP4})
    for (bool nested : {false, true})
      for (const DLDataType& dtype : float_dtypes()) {
        QuantCase c{format, dtype, 64, nested, {3, 1000}, dtype};
        c.infinite = true;
        check_against_cpu(c, rng);
      }
}

TEST_CASE("unaligned input, packed and output pointers give the same bytes and bits") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(11);
  for (bool nested : {false, true})
    for (const DLDataType& dtype : float_dtypes()) {
      QuantCase c{MOEQ_FORMAT_NF4, dtype, 64, nested, {5, 4099}, dtype};
      c.misalign_bytes = 1;
      check_against_cpu(c, rng);
    }
}

TEST_CASE("nested statistics of more blocks than the mean has lanes times 128 match the CPU") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(13);
  // 131073 blocks of 32: every lane of the mean sums across several passes.
  QuantCase c{MOEQ_FORMAT_NF4, bfloat16_type(), 32, true, {4, 1048584}, bfloat16_type()};
  c.caller_workspace = true;
  check_against_cpu(c, rng);
}

TEST_CASE("nested statistics of blocks of similar scale, summed in parallel, match the CPU") {
  if (skip_without_gpu()) return;
  // Without the special cases every block's absmax is near 3, so every lane of the
  // mean is summed in parallel, proven exact, and needs no pass in the CPU's order.
  std::mt19937_64 rng(29);
  for (const DLDataType& dtype : float_dtypes())
    for (int32_t blocksize : {32, 64, 4096}) {
      QuantCase c{MOEQ_FORMAT_NF4, dtype, blocksize, true, {3, 333, 1031}, dtype};
      c.special = false;
      c.caller_workspace = blocksize != 64;
      check_against_cpu(c, rng);
    }
}

TEST_CASE("the nested mean keeps the CPU's order when absmax spans many magnitudes") {
  if (skip_without_gpu()) return;
  // Block scales from 2^-100 to 2^100: lane sums round, so the GPU must sum each
  // lane in the CPU's order instead of in parallel.
  std::mt19937_64 rng(17);
  const int32_t blocksize = 32;
  HostTensor input(float32_type(), {1 << 20});
  input.fill_normal(rng);
  std::uniform_int_distribution<int> exponent(-100, 100);
  for (int64_t block = 0; block < input.numel() / blocksize; ++block) {
    const double scale = std::ldexp(1.0, exponent(rng));
    for (int64_t i = block * blocksize; i < (block + 1) * blocksize; ++i) input.set_flat(i, input.flat(i) * scale);
  }
  HostQTensor cpu(MOEQ_FORMAT_NF4, blocksize, true, input.shape(), float32_type());
  quantize_into(input, cpu);
  DeviceTensor device_input(float32_type(), input.shape());
  device_input.upload(input);
  DeviceQTensor gpu(MOEQ_FORMAT_NF4, blocksize, true, input.shape(), float32_type());
  REQUIRE_MOEQ_OK(moeq_quantize(&device_input.dl, gpu.config(), gpu.q(), nullptr, 0, nullptr));
  REQUIRE_CUDA_OK(cudaDeviceSynchronize());
  for (int i = 0; i < 5; ++i) {
    INFO("buffer " << std::string(kBufferNames[i]));
    CHECK(first_difference(gpu.download(i), host_buffer(cpu, i)) == -1);
  }
}

namespace {

DLDataType dtype_named(const std::string& name) {
  if (name == "float32") return float32_type();
  if (name == "float16") return float16_type();
  return bfloat16_type();
}

}  // namespace

TEST_CASE("dequantizing bitsandbytes' bytes on the GPU gives bitsandbytes' output bit for bit") {
  if (skip_without_gpu()) return;
  int checked = 0;
  for (const std::string& name : golden_case_names()) {
    CAPTURE(name);
    const GoldenCase golden = load_golden_case(name);
    const DLDataType dtype = dtype_named(golden.dtype);
    DeviceQTensor q(golden.quant_type == "nf4" ? MOEQ_FORMAT_NF4 : MOEQ_FORMAT_FP4, golden.blocksize,
                    golden.nested, golden.shape, dtype);
    q.upload(0, golden.packed);
    q.upload(1, golden.absmax);
    if (golden.nested) {
      q.upload(2, golden.nested_absmax);
      q.upload(3, golden.nested_quant_map);
      std::vector<uint8_t> offset(4);
      std::memcpy(offset.data(), &golden.nested_offset_bits, 4);
      q.upload(4, offset);
    }
    DeviceTensor output(dtype, golden.shape);
    REQUIRE_MOEQ_OK(moeq_dequantize(q.q(), &output.dl, nullptr));
    REQUIRE_CUDA_OK(cudaDeviceSynchronize());
    CHECK(first_difference(output.download(), golden.dequantized) == -1);
    ++checked;
  }
  CHECK(checked == 180);
}

TEST_CASE("quantize and dequantize captured in a CUDA graph replay on new inputs") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(19);
  const std::vector<int64_t> shape = {3, 333, 257};
  const DLDataType dtype = bfloat16_type();
  for (bool caller_workspace : {true, false}) {
    CAPTURE(caller_workspace);
    DeviceTensor input(dtype, shape);
    DeviceQTensor q(MOEQ_FORMAT_NF4, 64, true, shape, dtype);
    DeviceBuffer workspace(static_cast<size_t>(q.layout().quantize_workspace_bytes));
    DeviceTensor output(dtype, shape);
    cudaStream_t stream = nullptr;
    REQUIRE_CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaGraph_t graph = nullptr;
    REQUIRE_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    const moeq_status quantized =
        moeq_quantize(&input.dl, q.config(), q.q(), caller_workspace ? workspace.data() : nullptr,
                      caller_workspace ? workspace.bytes() : 0, stream);
    const moeq_status dequantized = moeq_dequantize(q.q(), &output.dl, stream);
    REQUIRE_CUDA_OK(cudaStreamEndCapture(stream, &graph));
    REQUIRE(quantized == MOEQ_OK);
    REQUIRE(dequantized == MOEQ_OK);
    cudaGraphExec_t exec = nullptr;
    REQUIRE_CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    for (int replay = 0; replay < 3; ++replay) {
      CAPTURE(replay);
      HostTensor host_input = random_input(dtype, shape, 64, true, false, rng);
      input.upload(host_input);
      q.poison();
      output.buffer.poison();
      // The poisoning ran on the legacy stream, which a non-blocking stream ignores.
      REQUIRE_CUDA_OK(cudaDeviceSynchronize());
      REQUIRE_CUDA_OK(cudaGraphLaunch(exec, stream));
      REQUIRE_CUDA_OK(cudaStreamSynchronize(stream));
      HostQTensor cpu(MOEQ_FORMAT_NF4, 64, true, shape, dtype);
      quantize_into(host_input, cpu);
      for (int i = 0; i < 5; ++i) {
        INFO("buffer " << std::string(kBufferNames[i]));
        CHECK(first_difference(q.download(i), host_buffer(cpu, i)) == -1);
      }
      HostTensor cpu_output(dtype, shape);
      REQUIRE_MOEQ_OK(moeq_dequantize(cpu.q(), cpu_output.dl(), nullptr));
      CHECK(first_float_difference(output.download(), host_bytes(cpu_output, output.payload_bytes()), dtype) == -1);
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
  }
}

TEST_CASE("a workspace smaller than the layout says is refused before anything is written") {
  if (skip_without_gpu()) return;
  std::mt19937_64 rng(23);
  const std::vector<int64_t> shape = {1000, 33};
  HostTensor host_input = random_input(float16_type(), shape, 128, false, false, rng);
  DeviceTensor input(float16_type(), shape);
  input.upload(host_input);
  DeviceQTensor q(MOEQ_FORMAT_FP4, 128, true, shape, float16_type());
  const size_t needed = static_cast<size_t>(q.layout().quantize_workspace_bytes);
  REQUIRE(needed > 0);
  DeviceBuffer workspace(needed);
  CHECK(moeq_quantize(&input.dl, q.config(), q.q(), workspace.data(), needed - 1, nullptr) ==
        MOEQ_ERR_WORKSPACE_TOO_SMALL);
  CHECK(std::string(moeq_last_error()).find("workspace_bytes") != std::string::npos);
  REQUIRE_CUDA_OK(cudaDeviceSynchronize());
  const std::vector<uint8_t> packed = q.download(0);
  CHECK(std::all_of(packed.begin(), packed.end(), [](uint8_t byte) { return byte == 0xFF; }));
  // Exactly the layout's size is enough, at any alignment of the caller's pointer.
  DeviceBuffer shifted(needed + 3);
  CHECK(moeq_quantize(&input.dl, q.config(), q.q(), static_cast<char*>(shifted.data()) + 3, needed,
                      nullptr) == MOEQ_OK);
  REQUIRE_CUDA_OK(cudaDeviceSynchronize());
  HostQTensor cpu(MOEQ_FORMAT_FP4, 128, true, shape, float16_type());
  quantize_into(host_input, cpu);
  for (int i = 0; i < 5; ++i) CHECK(first_difference(q.download(i), host_buffer(cpu, i)) == -1);
}

namespace {

// Cheap, parallel, reproducible fill of a huge float16 tensor: a hashed index
// gives a value in [-4, 4) at a per-block scale, so absmax varies between blocks.
void fill_hashed_float16(std::vector<uint16_t>& values) {
  const int64_t n = static_cast<int64_t>(values.size());
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (int64_t i = n * t / threads; i < n * (t + 1) / threads; ++i) {
        uint64_t z = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const double unit = static_cast<double>(z >> 11) * 0x1.0p-53;
        const double scale = 1.0 + static_cast<double>((i >> 6) % 7);
        values[static_cast<size_t>(i)] = moeq::float_to_float16_bits(static_cast<float>((unit * 8.0 - 4.0) * scale));
      }
    });
  for (std::thread& worker : workers) worker.join();
}

// core/nested.hpp's mean, written out from its specification.
float reference_mean(const std::vector<float>& values) {
  std::vector<double> lanes(moeq::kMeanLanes, 0.0);
  for (size_t lane = 0; lane < lanes.size(); ++lane)
    for (size_t i = lane; i < values.size(); i += lanes.size()) lanes[lane] += values[i];
  for (size_t half = lanes.size() / 2; half > 0; half /= 2)
    for (size_t lane = 0; lane < half; ++lane) lanes[lane] += lanes[lane + half];
  return static_cast<float>(lanes[0] / static_cast<double>(values.size()));
}

template <class T>
std::vector<T> as_vector(const std::vector<uint8_t>& bytes) {
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

}  // namespace

TEST_CASE("tensors of more than 2^31 elements quantize and dequantize like the CPU on every slice") {
  if (skip_without_gpu()) return;
  const char* enabled = std::getenv("MOEQ_LARGE_TESTS");
  if (enabled == nullptr || std::string(enabled) != "1") {
    MESSAGE("skipped: set MOEQ_LARGE_TESTS=1 (needs ~12 GB of GPU memory)");
    return;
  }
  size_t free_bytes = 0, total_bytes = 0;
  REQUIRE_CUDA_OK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (free_bytes < (size_t{14} << 30)) {
    MESSAGE("skipped: needs 14 GB of free GPU memory, " << (free_bytes >> 20) << " MB free");
    return;
  }
  const int64_t numel = (int64_t{1} << 31) + 4097;  // odd: a half-filled last byte
  const int32_t blocksize = 64;
  const int64_t group_elements = int64_t{blocksize} * MOEQ_NESTED_BLOCKSIZE;
  const std::vector<int64_t> shape = {numel};
  std::vector<uint16_t> values(static_cast<size_t>(numel));
  fill_hashed_float16(values);
  DeviceTensor input(float16_type(), shape);
  input.buffer.upload(values.data(), values.size() * 2);
  DeviceQTensor plain(MOEQ_FORMAT_NF4, blocksize, false, shape, float16_type());
  DeviceQTensor nested(MOEQ_FORMAT_NF4, blocksize, true, shape, float16_type());
  REQUIRE_MOEQ_OK(moeq_quantize(&input.dl, plain.config(), plain.q(), nullptr, 0, nullptr));
  REQUIRE_MOEQ_OK(moeq_quantize(&input.dl, nested.config(), nested.q(), nullptr, 0, nullptr));
  DeviceTensor output(float16_type(), shape);
  REQUIRE_MOEQ_OK(moeq_dequantize(plain.q(), &output.dl, nullptr));
  REQUIRE_CUDA_OK(cudaDeviceSynchronize());

  const std::vector<float> absmax = as_vector<float>(plain.download(1));
  const float offset = as_vector<float>(nested.download(4))[0];
  CHECK(offset == reference_mean(absmax));
  const std::vector<float> nested_absmax = as_vector<float>(nested.download(2));

  // Slices at the start, across element 2^31 and at the very end, each starting on
  // a nested group so the CPU sees whole blocks and groups.
  const int64_t slice = int64_t{1} << 20;
  const int64_t starts[] = {0, ((int64_t{1} << 31) - slice / 2) / group_elements * group_elements,
                            (numel - slice) / group_elements * group_elements};
  for (bool nested_pass : {false, true}) {
    if (nested_pass) {
      output.buffer.poison();
      REQUIRE_MOEQ_OK(moeq_dequantize(nested.q(), &output.dl, nullptr));
      REQUIRE_CUDA_OK(cudaDeviceSynchronize());
    }
    for (int64_t start : starts) {
      CAPTURE(nested_pass);
      CAPTURE(start);
      const int64_t count = std::min(slice, numel - start);
      const int64_t first_block = start / blocksize;
      const int64_t blocks = (count + blocksize - 1) / blocksize;
      const int64_t first_group = first_block / MOEQ_NESTED_BLOCKSIZE;
      const int64_t groups = (blocks + MOEQ_NESTED_BLOCKSIZE - 1) / MOEQ_NESTED_BLOCKSIZE;
      HostTensor host_slice(float16_type(), {count});
      std::memcpy(host_slice.data(), values.data() + start, static_cast<size_t>(count) * 2);
      HostQTensor cpu(MOEQ_FORMAT_NF4, blocksize, nested_pass, {count}, float16_type());
      if (!nested_pass) {
        quantize_into(host_slice, cpu);
        CHECK(first_difference(plain.download(0, start / 2, (count + 1) / 2), host_buffer(cpu, 0)) == -1);
        CHECK(first_difference(plain.download(1, first_block * 4, blocks * 4), host_buffer(cpu, 1)) == -1);
      } else {
        // The codes the CPU backend derives from these absmax, offset and groups.
        int64_t wrong_codes = 0, wrong_group_absmax = 0;
        const std::vector<uint8_t> codes = nested.download(1, first_block, blocks);
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t begin = g * MOEQ_NESTED_BLOCKSIZE;
          const int64_t end = std::min(blocks, begin + MOEQ_NESTED_BLOCKSIZE);
          float group_max = 0.0f;
          for (int64_t b = begin; b < end; ++b)
            group_max = std::max(group_max, std::fabs(absmax[first_block + b] - offset));
          if (group_max != nested_absmax[first_group + g]) ++wrong_group_absmax;
          const float scale = moeq::block_scale(group_max);
          for (int64_t b = begin; b < end; ++b) {
            const uint8_t code = moeq::nested_encode((absmax[first_block + b] - offset) * scale, [](int i) {
              return moeq::nested_code_value(static_cast<uint32_t>(i));
            });
            if (code != codes[b]) ++wrong_codes;
          }
        }
        CHECK(wrong_codes == 0);
        CHECK(wrong_group_absmax == 0);
        // The CPU dequantizes the GPU's nested buffers of this slice.
        const auto fill = [](HostTensor& into, const std::vector<uint8_t>& bytes) {
          std::memcpy(into.data(), bytes.data(), bytes.size());
        };
        fill(cpu.packed, nested.download(0, start / 2, (count + 1) / 2));
        fill(cpu.absmax, codes);
        fill(cpu.nested_absmax, nested.download(2, first_group * 4, groups * 4));
        fill(cpu.nested_code, nested.download(3));
        fill(cpu.nested_offset, nested.download(4));
      }
      HostTensor cpu_output(float16_type(), {count});
      REQUIRE_MOEQ_OK(moeq_dequantize(cpu.q(), cpu_output.dl(), nullptr));
      const std::vector<uint8_t> gpu_output = output.buffer.download(static_cast<size_t>(start) * 2,
                                                                     static_cast<size_t>(count) * 2);
      CHECK(first_float_difference(gpu_output, host_bytes(cpu_output, gpu_output.size()), float16_type()) == -1);
    }
  }
}

#else

TEST_CASE("GPU quantize and dequantize") { MESSAGE("skipped: libmoeq was built without CUDA"); }

#endif
