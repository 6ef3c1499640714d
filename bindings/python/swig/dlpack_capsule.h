/* DLPack capsules for Python: taking a producer's tensor, and handing tensors held by
 * the moeq package to consumers (the DLPack Python specification, versioned and legacy). */
#ifndef MOEQ_PY_DLPACK_CAPSULE_H
#define MOEQ_PY_DLPACK_CAPSULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlpack/dlpack.h>

/* A tensor the package holds: exactly one of the two managed tensors is set, and
 * freeing the holder calls that tensor's deleter. */
typedef struct moeq_py_tensor {
  DLManagedTensorVersioned* versioned;
  DLManagedTensor* legacy;
} moeq_py_tensor;

/* Consumes a "dltensor_versioned" or "dltensor" capsule (renaming it "used_..."), or
 * returns NULL with a Python exception set. */
moeq_py_tensor* moeq_py_dlpack_import(PyObject* capsule);
/* Takes ownership of a tensor moeq allocated. */
moeq_py_tensor* moeq_py_dlpack_hold(DLManagedTensorVersioned* managed);
void moeq_py_dlpack_release(moeq_py_tensor* tensor);

DLTensor* moeq_py_dlpack_view(const moeq_py_tensor* tensor);
int moeq_py_dlpack_read_only(const moeq_py_tensor* tensor);
/* (data_ptr, shape, strides or None, (dtype code, bits, lanes), (device type, id)). */
PyObject* moeq_py_dlpack_describe(const moeq_py_tensor* tensor);

/* A new capsule viewing `tensor` whose deleter releases a reference to `owner` (the
 * Python object keeping `tensor` alive); versioned or legacy as the consumer asked. */
PyObject* moeq_py_dlpack_export(const moeq_py_tensor* tensor, PyObject* owner, int versioned);

#endif /* MOEQ_PY_DLPACK_CAPSULE_H */
