// A grow-only, uninitialised, 64-byte aligned host buffer reused from tensor to
// tensor: no zero-filling and no fresh page faults for every tensor of a checkpoint.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace moeq::cli {

class ScratchBuffer {
 public:
  // At least `bytes` bytes, valid until the next call; contents are not kept.
  uint8_t* get(uint64_t bytes) {
    if (bytes > capacity_) {
      data_.reset();
      void* memory = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
      if (memory == nullptr) throw std::bad_alloc();
      data_.reset(static_cast<uint8_t*>(memory));
      capacity_ = bytes;
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(uint8_t* memory) const { std::free(memory); }
  };
  std::unique_ptr<uint8_t[], Free> data_;
  uint64_t capacity_ = 0;
};

}  // namespace moeq::cli
