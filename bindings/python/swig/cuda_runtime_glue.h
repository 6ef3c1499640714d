/* What the Python package needs from the CUDA runtime beyond moeq's ABI: byte copies
 * between host and device tensors, and ordering one stream after another. Without
 * CUDA (MOEQ_PY_WITH_CUDA 0) only host copies work. */
#ifndef MOEQ_PY_CUDA_RUNTIME_GLUE_H
#define MOEQ_PY_CUDA_RUNTIME_GLUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "dlpack_capsule.h"

/* Copies all bytes of contiguous `source` into contiguous `destination` (same byte
 * count, any devices) and waits for the copy. Returns None, or NULL with an exception. */
PyObject* moeq_py_copy_bytes(const moeq_py_tensor* destination, const moeq_py_tensor* source);

/* Makes work queued later on stream `consumer` wait for the work queued so far on
 * stream `producer` of CUDA device `device_id`, without blocking the host. */
PyObject* moeq_py_stream_wait(uintptr_t consumer, uintptr_t producer, int device_id);

#endif /* MOEQ_PY_CUDA_RUNTIME_GLUE_H */
