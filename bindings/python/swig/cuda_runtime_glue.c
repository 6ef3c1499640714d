/* Copies and stream ordering through the CUDA runtime (see cuda_runtime_glue.h). */
#include "cuda_runtime_glue.h"

#include <string.h>

#if MOEQ_PY_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

static int64_t byte_count(const DLTensor* tensor) {
  int64_t count = (tensor->dtype.bits * tensor->dtype.lanes + 7) / 8;
  for (int32_t i = 0; i < tensor->ndim; ++i) count *= tensor->shape[i];
  return count;
}

static int is_host(const DLTensor* tensor) {
  return tensor->device.device_type == kDLCPU || tensor->device.device_type == kDLCUDAHost;
}

#if MOEQ_PY_WITH_CUDA
static PyObject* raise_cuda(const char* what, cudaError_t status) {
  PyErr_Format(PyExc_RuntimeError, "%s: CUDA error %s (%s)", what, cudaGetErrorName(status),
               cudaGetErrorString(status));
  return NULL;
}
#endif

PyObject* moeq_py_copy_bytes(const moeq_py_tensor* destination, const moeq_py_tensor* source) {
  const DLTensor* to = moeq_py_dlpack_view(destination);
  const DLTensor* from = moeq_py_dlpack_view(source);
  const int64_t bytes = byte_count(from);
  if (byte_count(to) != bytes) {
    PyErr_Format(PyExc_ValueError, "copy: %lld bytes cannot go into %lld", (long long)bytes,
                 (long long)byte_count(to));
    return NULL;
  }
  char* to_data = (char*)to->data + to->byte_offset;
  const char* from_data = (const char*)from->data + from->byte_offset;
  if (is_host(to) && is_host(from)) {
    Py_BEGIN_ALLOW_THREADS
    memcpy(to_data, from_data, (size_t)bytes);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
  }
#if MOEQ_PY_WITH_CUDA
  cudaError_t status;
  Py_BEGIN_ALLOW_THREADS
  status = cudaMemcpy(to_data, from_data, (size_t)bytes, cudaMemcpyDefault);
  Py_END_ALLOW_THREADS
  if (status != cudaSuccess) return raise_cuda("copy", status);
  Py_RETURN_NONE;
#else
  PyErr_SetString(PyExc_NotImplementedError,
                  "copy: this moeq package was built without CUDA and copies host memory only");
  return NULL;
#endif
}

PyObject* moeq_py_stream_wait(uintptr_t consumer, uintptr_t producer, int device_id) {
#if MOEQ_PY_WITH_CUDA
  int previous_device = 0;
  cudaEvent_t event = NULL;
  cudaError_t status = cudaGetDevice(&previous_device);
  if (status == cudaSuccess) status = cudaSetDevice(device_id);
  if (status == cudaSuccess) status = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
  if (status == cudaSuccess) status = cudaEventRecord(event, (cudaStream_t)producer);
  if (status == cudaSuccess) status = cudaStreamWaitEvent((cudaStream_t)consumer, event, 0);
  if (event != NULL) cudaEventDestroy(event);
  cudaSetDevice(previous_device);
  if (status != cudaSuccess) return raise_cuda("stream ordering", status);
  Py_RETURN_NONE;
#else
  (void)consumer;
  (void)producer;
  (void)device_id;
  PyErr_SetString(PyExc_NotImplementedError,
                  "stream ordering: this moeq package was built without CUDA");
  return NULL;
#endif
}
