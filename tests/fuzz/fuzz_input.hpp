// The fuzz input read as a stream of decisions; past its end every read is 0, so
// a short input still decodes to a whole (mostly default) call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace moeq_fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool exhausted() const { return position_ >= size_; }
  uint8_t byte() { return exhausted() ? 0 : data_[position_++]; }
  // A value in [0, count).
  uint32_t below(uint32_t count) {
    const uint32_t low = byte();
    const uint32_t high = byte();
    return count == 0 ? 0 : (low | high << 8) % count;
  }
  bool chance(uint32_t one_in) { return below(one_in) == 0; }
  uint64_t raw64() {
    uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value |= static_cast<uint64_t>(byte()) << (8 * i);
    return value;
  }
  // A size: mostly small, sometimes at the edges of 32- and 64-bit arithmetic.
  int64_t size_value() {
    static constexpr int64_t kSmall[] = {0,  1,  2,  3,  4,  5,  7,  8,   16,
                                         31, 32, 33, 63, 64, 65, 96, 128, 256};
    static constexpr int64_t kLarge[] = {-1,
                                         -2,
                                         INT32_MAX,
                                         int64_t{1} << 31,
                                         (int64_t{1} << 32) + 1,
                                         int64_t{1} << 40,
                                         int64_t{1} << 62,
                                         INT64_MAX,
                                         INT64_MIN,
                                         INT64_MAX / 8 + 1};
    const uint8_t kind = byte();
    if (kind < 200) return kSmall[kind % (sizeof kSmall / sizeof kSmall[0])];
    if (kind < 240) return kLarge[kind % (sizeof kLarge / sizeof kLarge[0])];
    return static_cast<int64_t>(raw64());
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t position_ = 0;
};

}  // namespace moeq_fuzz
