// Tensor descriptors of the C API fuzzer: mutation and exact-size backing memory.
#include "fuzz_tensor.hpp"

#include <algorithm>

namespace moeq_fuzz {
namespace {

// Claims beyond this many bytes get no memory: data stays NULL, which the library
// must refuse for any non-empty tensor before reading it.
constexpr uint64_t kMaxClaimBytes = uint64_t{1} << 20;

DLDataType any_dtype(FuzzInput& input) {
  static const DLDataType kTypes[] = {
      {kDLFloat, 32, 1},  {kDLFloat, 16, 1}, {kDLBfloat, 16, 1}, {kDLUInt, 8, 1},
      {kDLInt, 8, 1},     {kDLInt, 32, 1},   {kDLInt, 64, 1},    {kDLFloat, 64, 1},
      {kDLFloat, 32, 2},  {kDLFloat, 8, 1},  {kDLUInt, 4, 1},    {kDLBool, 8, 1},
      {kDLBfloat, 32, 1}, {kDLUInt, 16, 1},  {kDLFloat, 0, 1},   {kDLFloat, 32, 0}};
  if (!input.chance(8)) return kTypes[input.below(sizeof kTypes / sizeof kTypes[0])];
  DLDataType raw;
  raw.code = input.byte();
  raw.bits = input.byte();
  raw.lanes = static_cast<uint16_t>(input.below(5));
  return raw;
}

DLDevice any_device(FuzzInput& input) {
  static const int32_t kTypes[] = {kDLCPU,    kDLCUDA,   kDLCUDAHost, kDLCUDAManaged,
                                   kDLOpenCL, kDLVulkan, kDLMetal,    kDLROCM,
                                   0,         -1,        1000};
  DLDevice device;
  device.device_type =
      static_cast<DLDeviceType>(kTypes[input.below(sizeof kTypes / sizeof kTypes[0])]);
  device.device_id = input.chance(2) ? 0 : static_cast<int32_t>(input.size_value());
  return device;
}

void resize_dims(TensorSpec& spec, int32_t ndim) {
  spec.ndim = ndim;
  const size_t count = static_cast<size_t>(std::max(ndim, 0));
  spec.shape.resize(count, 1);
  if (spec.strides) spec.strides->resize(count, 1);
}

}  // namespace

DLDataType float32() { return {kDLFloat, 32, 1}; }
DLDataType float16() { return {kDLFloat, 16, 1}; }
DLDataType bfloat16() { return {kDLBfloat, 16, 1}; }
DLDataType uint8() { return {kDLUInt, 8, 1}; }
DLDataType int32() { return {kDLInt, 32, 1}; }
DLDataType int64() { return {kDLInt, 64, 1}; }

void mutate(TensorSpec& spec, FuzzInput& input, int tensor_count) {
  switch (input.below(13)) {
    case 0: spec.present = !spec.present; break;
    case 1: spec.dtype = any_dtype(input); break;
    case 2: {
      static const int32_t kNdims[] = {0, 1, 2, 3, 4, 8, 9, 16, 17, -1, -100};
      resize_dims(spec, kNdims[input.below(sizeof kNdims / sizeof kNdims[0])]);
      break;
    }
    case 3:
    case 4:
      if (!spec.shape.empty()) spec.shape[input.below(spec.shape.size())] = input.size_value();
      break;
    case 5: spec.shape_null = !spec.shape_null; break;
    case 6:
      if (spec.strides && input.chance(3)) {
        spec.strides.reset();
      } else {
        if (!spec.strides) {
          // Start from the compact strides so one change is one inconsistency.
          std::vector<int64_t> compact(spec.shape.size(), 1);
          for (size_t i = compact.size(); i-- > 1;)  // saturated: huge sizes claim huge strides
            if (__builtin_mul_overflow(compact[i], spec.shape[i], &compact[i - 1]))
              compact[i - 1] = INT64_MAX;
          spec.strides = compact;
        }
        if (!spec.strides->empty()) {
          const int64_t value =
              input.chance(2) ? static_cast<int64_t>(input.below(9)) - 2 : input.size_value();
          (*spec.strides)[input.below(spec.strides->size())] = value;
        }
      }
      break;
    case 7:
      spec.byte_offset =
          input.chance(2) ? input.below(65) : static_cast<uint64_t>(input.size_value());
      break;
    case 8: spec.device = any_device(input); break;
    case 9: spec.misalign = input.below(8); break;
    case 10: spec.data_null = !spec.data_null; break;
    case 11:
      spec.alias_of = static_cast<int>(input.below(static_cast<uint32_t>(tensor_count)));
      break;
    case 12:
      if (!spec.contents.empty())
        spec.contents[input.below(spec.contents.size())] = input.size_value();
      break;
  }
}

uint8_t* Arena::buffer(uint64_t bytes) {
  buffers_.emplace_back(new uint8_t[std::max<uint64_t>(bytes, 1)]);
  uint8_t* place = buffers_.back().get();
  for (uint64_t i = 0; i < bytes; ++i) {
    seed_ = seed_ * 6364136223846793005ull + 1442695040888963407ull;
    place[i] = static_cast<uint8_t>(seed_ >> 56);
  }
  return place;
}

std::vector<DLTensor*> Arena::materialize(const std::vector<TensorSpec>& specs) {
  std::vector<DLTensor*> result(specs.size(), nullptr);
  std::vector<Claim> claims(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    if (!spec.present) continue;
    DLTensor& tensor = tensors_.emplace_back();
    result[i] = &tensor;
    tensor.ndim = spec.ndim;
    tensor.dtype = spec.dtype;
    tensor.device = spec.device;
    tensor.byte_offset = spec.byte_offset;
    // Shape and strides in buffers of exactly ndim entries.
    const uint64_t dims = spec.shape.size();
    if (!spec.shape_null && spec.ndim >= 0) {
      tensor.shape = reinterpret_cast<int64_t*>(buffer(dims * 8));
      std::copy(spec.shape.begin(), spec.shape.end(), tensor.shape);
    }
    if (spec.strides) {
      tensor.strides = reinterpret_cast<int64_t*>(buffer(dims * 8));
      std::copy(spec.strides->begin(), spec.strides->end(), tensor.strides);
    }
    if (spec.data_null) continue;

    // The span of element offsets the descriptor claims, in exact arithmetic.
    const __int128 element_bytes =
        std::max<__int128>(1, (static_cast<__int128>(spec.dtype.bits) * spec.dtype.lanes + 7) / 8);
    // Sizes and strides past 2^40 are huge claims whatever the rest; bounding them
    // keeps this sum within 128 bits.
    constexpr __int128 kHuge = __int128{1} << 40;
    __int128 low = 0, high = 0, compact = 1;
    bool empty = false, huge = false;
    for (size_t d = dims; d-- > 0;) {
      const __int128 size = std::max<int64_t>(spec.shape[d], 0);
      const __int128 stride = spec.strides ? (*spec.strides)[d] : compact;
      if (size == 0) empty = true;
      else if (size > kHuge || (size > 1 && (stride > kHuge || stride < -kHuge))) huge = true;
      else if (stride < 0) low += (size - 1) * stride;
      else high += (size - 1) * stride;
      compact = std::min(compact * std::max<__int128>(size, 1), kHuge + 1);
    }
    const __int128 span = empty ? 0 : (high - low + 1) * element_bytes;
    if (!empty && (huge || span > static_cast<__int128>(kMaxClaimBytes)))
      continue;  // data stays NULL
    const uint64_t bytes = static_cast<uint64_t>(span);
    uint8_t* first = nullptr;
    const int target = spec.alias_of;
    if (target >= 0 && static_cast<size_t>(target) < specs.size() &&
        claims[target].first != nullptr && claims[target].bytes >= bytes + spec.misalign) {
      first = claims[target].first + spec.misalign;
    } else {
      first = buffer(bytes + spec.misalign) + spec.misalign;
    }
    claims[i] = {first, bytes};
    // Integer contents (routing) written at their compact positions when contiguous.
    const bool integer = spec.dtype.code == kDLInt && spec.dtype.lanes == 1 &&
                         (spec.dtype.bits == 32 || spec.dtype.bits == 64);
    if (integer && !spec.strides && !empty) {
      const uint64_t count =
          std::min<uint64_t>(spec.contents.size(), bytes / (spec.dtype.bits / 8));
      for (uint64_t e = 0; e < count; ++e) {
        if (spec.dtype.bits == 32) {
          const int32_t value = static_cast<int32_t>(spec.contents[e]);
          std::memcpy(first + 4 * e, &value, 4);
        } else {
          std::memcpy(first + 8 * e, &spec.contents[e], 8);
        }
      }
    }
    const uintptr_t element0 =
        reinterpret_cast<uintptr_t>(first) + static_cast<uintptr_t>(-low * element_bytes);
    // No real pointer lies below address 0: an offset larger than the address is cut.
    tensor.byte_offset = std::min<uint64_t>(spec.byte_offset, element0);
    tensor.data = reinterpret_cast<void*>(element0 - tensor.byte_offset);
  }
  return result;
}

}  // namespace moeq_fuzz
