// The GPU quantizer (built with CUDA only): a pipeline on one stream. Each tensor
// is read from its file by all cores into a ring of pinned chunks, each chunk
// copied to the GPU while the next is read; the library quantizes it there, and
// its 4-bit form is copied back into a pinned result slot that the writer thread
// empties while the next tensor is read. Host memory: the ring plus two 4-bit
// results; GPU memory: the largest tensor plus its 4-bit form.
#include "cli/host_qtensor_buffers.hpp"
#include "cli/parallel_read.hpp"
#include "cli/quantizer.hpp"
#include "cli/scratch_buffer.hpp"
#include "safetensors/error.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>

namespace moeq::cli {
namespace {

// A chunk's copy to the GPU (~1.3 ms at 50 GB/s) hides behind the reading of
// the next; pinned staging stays at 256 MiB whatever the tensor.
constexpr uint64_t kChunkBytes = uint64_t{64} << 20;
constexpr int kChunks = 4;

void check_cuda(cudaError_t status, const std::string& what) {
  if (status != cudaSuccess) throw safetensors::Error(what + ": " + cudaGetErrorString(status));
}

// Host memory pinned for DMA (copied with no bounce buffer), and GPU memory.
struct PinnedMemory {
  static void* allocate(uint64_t bytes) {
    void* memory = nullptr;
    check_cuda(cudaHostAlloc(&memory, bytes, cudaHostAllocDefault),
               "pinning " + std::to_string(bytes) + " bytes of host memory");
    return memory;
  }
  static void release(void* memory) { cudaFreeHost(memory); }
};

struct DeviceMemory {
  static void* allocate(uint64_t bytes) {
    void* memory = nullptr;
    check_cuda(cudaMalloc(&memory, bytes), "allocating " + std::to_string(bytes) + " bytes on the GPU");
    return memory;
  }
  static void release(void* memory) { cudaFree(memory); }
};

using PinnedBuffer = GrowingBuffer<PinnedMemory>;
using DeviceBuffer = GrowingBuffer<DeviceMemory>;

// Waiting blocks the thread instead of spinning: the cores are busy reading.
class Event {
 public:
  Event() {
    check_cuda(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming | cudaEventBlockingSync),
               "creating a CUDA event");
  }
  ~Event() { cudaEventDestroy(event_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(cudaStream_t stream) { check_cuda(cudaEventRecord(event_, stream), "recording a CUDA event"); }
  // Returns at once if nothing was recorded yet.
  void wait(const std::string& what) { check_cuda(cudaEventSynchronize(event_), what); }

 private:
  cudaEvent_t event_ = nullptr;
};

struct StagingChunk {
  PinnedBuffer host;
  Event copied;  // its last copy to the GPU is done
};

class CudaResultSlot final : public ResultSlot {
 public:
  QuantizedBytes wait() override {
    copied.wait("copying a quantized tensor back from the GPU");
    return buffers.bytes();
  }

  HostQTensorBuffers<PinnedBuffer> buffers;
  Event copied;
};

class CudaQuantizer final : public Quantizer {
 public:
  CudaQuantizer(const moeq_quant_config& config, int device_id) : config_(config), device_id_(device_id) {
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a CUDA stream");
  }
  // Nothing may still copy into the buffers the members free after this.
  ~CudaQuantizer() override {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }

  QuantizedResult quantize(const safetensors::File& source, const safetensors::TensorInfo& tensor) override {
    const moeq_quant_layout layout = quantized_layout(config_, tensor);
    const bool nested = layout.nested_code_count > 0;
    uint8_t* device_input = on_device(input_, tensor.bytes());
    upload(source, tensor, device_input);

    // One set of GPU buffers serves every tensor: the stream runs each tensor's
    // copies back before the next tensor's kernels.
    const QTensorBuffers device{on_device(packed_, layout.packed_bytes),
                                on_device(absmax_, absmax_bytes(layout)),
                                nested ? on_device(nested_absmax_, nested_absmax_bytes(layout)) : nullptr,
                                nested ? on_device(nested_code_, nested_code_bytes(layout)) : nullptr,
                                nested ? on_device(nested_offset_, sizeof(float)) : nullptr};
    const uint64_t workspace_bytes = static_cast<uint64_t>(layout.quantize_workspace_bytes);
    void* workspace = workspace_bytes > 0 ? on_device(workspace_, workspace_bytes) : nullptr;
    DLTensor input{device_input,
                   {kDLCUDA, device_id_},
                   static_cast<int32_t>(tensor.shape.size()),
                   safetensors::to_dl_dtype(tensor.dtype),
                   const_cast<int64_t*>(tensor.shape.data()),
                   nullptr,
                   0};
    QTensorView out(layout, device, DLDevice{kDLCUDA, device_id_});
    check_status(moeq_quantize(&input, &config_, out.get(), workspace, workspace_bytes, stream_),
                 "quantize '" + tensor.name + "' on the GPU");

    CudaResultSlot& slot = slots_[next_slot_++ % kResultSlots];
    QuantizedResult result = lend(slot);  // the kernels run while this waits for the writer
    const std::string what = "copying '" + tensor.name + "' back from the GPU";
    // A result dropped unwritten (after a failure) may still be arriving: prepare may free its buffers.
    slot.copied.wait(what);
    const QTensorBuffers host = slot.buffers.prepare(layout);
    copy_back(host.packed, device.packed, layout.packed_bytes, what);
    copy_back(host.absmax, device.absmax, absmax_bytes(layout), what);
    if (nested) {
      copy_back(host.nested_absmax, device.nested_absmax, nested_absmax_bytes(layout), what);
      copy_back(host.nested_code, device.nested_code, nested_code_bytes(layout), what);
      copy_back(host.nested_offset, device.nested_offset, sizeof(float), what);
    }
    slot.copied.record(stream_);
    return result;
  }

 private:
  // `bytes` of `buffer`; growing it first waits for the stream, its only user.
  uint8_t* on_device(DeviceBuffer& buffer, uint64_t bytes) {
    if (!buffer.holds(bytes)) check_cuda(cudaStreamSynchronize(stream_), "waiting for the GPU");
    return buffer.get(bytes);
  }

  // Chunk by chunk through the ring, so each chunk's copy overlaps the next read.
  void upload(const safetensors::File& source, const safetensors::TensorInfo& tensor, uint8_t* device_input) {
    const std::string what = "copying '" + tensor.name + "' to the GPU";
    for (uint64_t offset = 0; offset < tensor.bytes(); offset += kChunkBytes) {
      StagingChunk& chunk = chunks_[next_chunk_++ % kChunks];
      const uint64_t bytes = std::min(kChunkBytes, tensor.bytes() - offset);
      chunk.copied.wait(what);
      uint8_t* host = chunk.host.get(bytes);
      read_in_parallel(source, tensor, offset, bytes, host);
      check_cuda(cudaMemcpyAsync(device_input + offset, host, bytes, cudaMemcpyHostToDevice, stream_), what);
      chunk.copied.record(stream_);
    }
  }

  void copy_back(void* host, const void* device, uint64_t bytes, const std::string& what) {
    check_cuda(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_), what);
  }

  moeq_quant_config config_;
  int device_id_;
  cudaStream_t stream_ = nullptr;
  std::array<StagingChunk, kChunks> chunks_;
  uint64_t next_chunk_ = 0;
  DeviceBuffer input_, packed_, absmax_, nested_absmax_, nested_code_, nested_offset_, workspace_;
  std::array<CudaResultSlot, kResultSlots> slots_;
  uint64_t next_slot_ = 0;
};

}  // namespace

std::unique_ptr<Quantizer> make_cuda_quantizer(const moeq_quant_config& config) {
  if (moeq_cuda_available() == 0)
    throw safetensors::Error(std::string("--device cuda: no usable GPU (") + moeq_build_info() + ")");
  int device_id = 0;
  check_cuda(cudaGetDevice(&device_id), "--device cuda");
  return std::make_unique<CudaQuantizer>(config, device_id);
}

}  // namespace moeq::cli
