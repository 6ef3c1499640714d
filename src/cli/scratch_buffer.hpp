// Grow-only, uninitialised buffers reused from tensor to tensor: no zero-filling and
// no fresh page faults (or pinning, or GPU allocation) for every tensor of a
// checkpoint. `Memory` says where the bytes live; ScratchBuffer is 64-byte aligned
// host memory.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <new>

namespace moeq::cli {

// Memory: static void* allocate(uint64_t bytes) (throws on failure) and
// static void release(void*) (accepts nullptr).
template <class Memory>
class GrowingBuffer {
 public:
  GrowingBuffer() = default;
  ~GrowingBuffer() { Memory::release(data_); }
  GrowingBuffer(const GrowingBuffer&) = delete;
  GrowingBuffer& operator=(const GrowingBuffer&) = delete;

  bool holds(uint64_t bytes) const { return bytes <= capacity_; }
  // At least `bytes` bytes, valid until the next call that grows it; contents are
  // not kept. Whoever grows it makes sure nothing (a copy, a kernel) still uses it.
  uint8_t* get(uint64_t bytes) {
    if (!holds(bytes)) {
      Memory::release(data_);
      data_ = nullptr;
      capacity_ = 0;
      data_ = static_cast<uint8_t*>(Memory::allocate(bytes));
      capacity_ = bytes;
    }
    return data_;
  }

 private:
  uint8_t* data_ = nullptr;
  uint64_t capacity_ = 0;
};

struct AlignedHostMemory {
  static void* allocate(uint64_t bytes) {
    void* memory = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (memory == nullptr) throw std::bad_alloc();
    return memory;
  }
  static void release(void* memory) { std::free(memory); }
};

using ScratchBuffer = GrowingBuffer<AlignedHostMemory>;

}  // namespace moeq::cli
