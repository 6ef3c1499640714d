// moeq_tensor_empty / moeq_tensor_free: library-owned memory as DLPack >= 1.0.
#include "api/device_dispatch.hpp"
#include "core/backend.hpp"
#include "core/tensor_check.hpp"

#include <cstdlib>
#include <memory>

namespace moeq {
namespace {

// The managed tensor and the storage its shape and strides point into.
struct OwnedTensor {
  DLManagedTensorVersioned managed{};
  int64_t shape[16] = {};
  Device device;
};

void delete_owned_tensor(DLManagedTensorVersioned* managed) {
  if (managed == nullptr) return;
  auto* owned = static_cast<OwnedTensor*>(managed->manager_ctx);
  if (owned->device.kind == DeviceKind::Cpu) std::free(managed->dl_tensor.data);
  else cuda::release(managed->dl_tensor.data, owned->device.id);
  delete owned;
}

DLManagedTensorVersioned* tensor_empty(int32_t ndim, const int64_t* shape, DLDataType dtype,
                                       DLDevice dl_device) {
  if (ndim < 0 || ndim > 16) fail_argument("ndim", "expected 0..16, got " + std::to_string(ndim));
  if (ndim > 0 && shape == nullptr) fail_argument("shape", "expected sizes, got NULL");
  if (dtype.lanes == 0 || dtype.bits == 0 || dtype.bits % 8 != 0)
    fail_argument("dtype", "expected a whole number of bytes per element, got " + dtype_name(dtype));
  const int64_t count = element_count(ndim, shape, "shape");
  const int64_t element_bytes = int64_t{dtype.bits} / 8 * dtype.lanes;
  if (count > (int64_t{1} << 60) / element_bytes) fail_argument("shape", "tensor too large");
  const size_t bytes = static_cast<size_t>(count * element_bytes);

  DLTensor probe{};
  probe.device = dl_device;
  auto owned = std::make_unique<OwnedTensor>();
  owned->device = device_of(probe, "device");
  void* data = nullptr;
  if (owned->device.kind == DeviceKind::Cpu) {
    // 64-byte alignment for vector loads; aligned_alloc wants a multiple of it.
    data = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (data == nullptr) fail(MOEQ_ERR_OUT_OF_MEMORY, "could not allocate " + std::to_string(bytes) + " host bytes");
  } else {
    require_cuda_device(owned->device, "device");
    data = cuda::allocate(bytes, owned->device.id);
  }
  for (int32_t i = 0; i < ndim; ++i) owned->shape[i] = shape[i];
  DLManagedTensorVersioned& managed = owned->managed;
  managed.version.major = DLPACK_MAJOR_VERSION;
  managed.version.minor = DLPACK_MINOR_VERSION;
  managed.manager_ctx = owned.get();
  managed.deleter = delete_owned_tensor;
  managed.flags = 0;
  managed.dl_tensor.data = data;
  managed.dl_tensor.device = dl_device;
  managed.dl_tensor.ndim = ndim;
  managed.dl_tensor.dtype = dtype;
  managed.dl_tensor.shape = owned->shape;
  managed.dl_tensor.strides = nullptr;
  managed.dl_tensor.byte_offset = 0;
  return &owned.release()->managed;
}

}  // namespace
}  // namespace moeq

extern "C" {

MOEQ_API moeq_status moeq_tensor_empty(int32_t ndim, const int64_t* shape, DLDataType dtype,
                                       DLDevice device, DLManagedTensorVersioned** out) {
  return moeq::api_guard([&] {
    if (out == nullptr) moeq::fail_argument("out", "expected a place for the tensor, got NULL");
    *out = nullptr;
    *out = moeq::tensor_empty(ndim, shape, dtype, device);
  });
}

MOEQ_API void moeq_tensor_free(DLManagedTensorVersioned* tensor) {
  if (tensor != nullptr && tensor->deleter != nullptr) tensor->deleter(tensor);
}

}  // extern "C"
