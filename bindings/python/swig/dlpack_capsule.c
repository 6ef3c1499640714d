/* DLPack capsules for Python (see dlpack_capsule.h). */
#include "dlpack_capsule.h"

#include <stdlib.h>

static const char kVersionedName[] = "dltensor_versioned";
static const char kUsedVersionedName[] = "used_dltensor_versioned";
static const char kLegacyName[] = "dltensor";
static const char kUsedLegacyName[] = "used_dltensor";

moeq_py_tensor* moeq_py_dlpack_import(PyObject* capsule) {
  moeq_py_tensor* tensor = (moeq_py_tensor*)calloc(1, sizeof(moeq_py_tensor));
  if (tensor == NULL) return (moeq_py_tensor*)PyErr_NoMemory();
  if (PyCapsule_IsValid(capsule, kVersionedName)) {
    DLManagedTensorVersioned* managed =
        (DLManagedTensorVersioned*)PyCapsule_GetPointer(capsule, kVersionedName);
    if (managed == NULL || PyCapsule_SetName(capsule, kUsedVersionedName) != 0) goto fail;
    tensor->versioned = managed;
    if (managed->version.major > DLPACK_MAJOR_VERSION) {
      PyErr_Format(PyExc_BufferError, "DLPack %u.%u tensors are not supported (at most %d.x)",
                   managed->version.major, managed->version.minor, DLPACK_MAJOR_VERSION);
      moeq_py_dlpack_release(tensor);
      return NULL;
    }
    return tensor;
  }
  if (PyCapsule_IsValid(capsule, kLegacyName)) {
    DLManagedTensor* managed = (DLManagedTensor*)PyCapsule_GetPointer(capsule, kLegacyName);
    if (managed == NULL || PyCapsule_SetName(capsule, kUsedLegacyName) != 0) goto fail;
    tensor->legacy = managed;
    return tensor;
  }
  PyErr_Format(PyExc_TypeError, "expected an unused DLPack capsule, got %s",
               Py_TYPE(capsule)->tp_name);
fail:
  free(tensor);
  return NULL;
}

moeq_py_tensor* moeq_py_dlpack_hold(DLManagedTensorVersioned* managed) {
  moeq_py_tensor* tensor = (moeq_py_tensor*)calloc(1, sizeof(moeq_py_tensor));
  if (tensor == NULL) {
    if (managed->deleter) managed->deleter(managed);
    return (moeq_py_tensor*)PyErr_NoMemory();
  }
  tensor->versioned = managed;
  return tensor;
}

void moeq_py_dlpack_release(moeq_py_tensor* tensor) {
  if (tensor == NULL) return;
  if (tensor->versioned && tensor->versioned->deleter) tensor->versioned->deleter(tensor->versioned);
  if (tensor->legacy && tensor->legacy->deleter) tensor->legacy->deleter(tensor->legacy);
  free(tensor);
}

DLTensor* moeq_py_dlpack_view(const moeq_py_tensor* tensor) {
  return tensor->versioned ? &tensor->versioned->dl_tensor : &tensor->legacy->dl_tensor;
}

int moeq_py_dlpack_read_only(const moeq_py_tensor* tensor) {
  return tensor->versioned && (tensor->versioned->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0;
}

static PyObject* int64_tuple(const int64_t* values, int32_t count) {
  PyObject* tuple = PyTuple_New(count);
  if (tuple == NULL) return NULL;
  for (int32_t i = 0; i < count; ++i) {
    PyObject* item = PyLong_FromLongLong(values[i]);
    if (item == NULL) {
      Py_DECREF(tuple);
      return NULL;
    }
    PyTuple_SET_ITEM(tuple, i, item);
  }
  return tuple;
}

PyObject* moeq_py_dlpack_describe(const moeq_py_tensor* tensor) {
  const DLTensor* dl = moeq_py_dlpack_view(tensor);
  PyObject* shape = int64_tuple(dl->shape, dl->ndim);
  PyObject* strides = dl->strides ? int64_tuple(dl->strides, dl->ndim) : Py_NewRef(Py_None);
  PyObject* description = NULL;
  if (shape && strides)
    description = Py_BuildValue("(KOO(iii)(ii))",
                                (unsigned long long)((uintptr_t)dl->data + dl->byte_offset), shape,
                                strides, dl->dtype.code, dl->dtype.bits, dl->dtype.lanes,
                                (int)dl->device.device_type, dl->device.device_id);
  Py_XDECREF(shape);
  Py_XDECREF(strides);
  return description;
}

/* ---------------------------------------------------------------- export */

static void release_owner(PyObject* owner) {
  if (!Py_IsInitialized()) return; /* the interpreter is gone, and the owner with it */
  PyGILState_STATE gil = PyGILState_Ensure();
  Py_DECREF(owner);
  PyGILState_Release(gil);
}

static void delete_exported_versioned(DLManagedTensorVersioned* self) {
  release_owner((PyObject*)self->manager_ctx);
  free(self);
}

static void delete_exported_legacy(DLManagedTensor* self) {
  release_owner((PyObject*)self->manager_ctx);
  free(self);
}

/* Capsule destructors: a capsule no consumer took still owns its tensor. */
static void destroy_versioned_capsule(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, kVersionedName)) return;
  DLManagedTensorVersioned* managed =
      (DLManagedTensorVersioned*)PyCapsule_GetPointer(capsule, kVersionedName);
  managed->deleter(managed);
}

static void destroy_legacy_capsule(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, kLegacyName)) return;
  DLManagedTensor* managed = (DLManagedTensor*)PyCapsule_GetPointer(capsule, kLegacyName);
  managed->deleter(managed);
}

PyObject* moeq_py_dlpack_export(const moeq_py_tensor* tensor, PyObject* owner, int versioned) {
  const DLTensor* view = moeq_py_dlpack_view(tensor);
  PyObject* capsule = NULL;
  if (versioned) {
    DLManagedTensorVersioned* managed =
        (DLManagedTensorVersioned*)calloc(1, sizeof(DLManagedTensorVersioned));
    if (managed == NULL) return PyErr_NoMemory();
    managed->version.major = DLPACK_MAJOR_VERSION;
    managed->version.minor = DLPACK_MINOR_VERSION;
    managed->manager_ctx = Py_NewRef(owner);
    managed->deleter = delete_exported_versioned;
    managed->flags = moeq_py_dlpack_read_only(tensor) ? DLPACK_FLAG_BITMASK_READ_ONLY : 0;
    managed->dl_tensor = *view;
    capsule = PyCapsule_New(managed, kVersionedName, destroy_versioned_capsule);
    if (capsule == NULL) delete_exported_versioned(managed);
  } else {
    if (moeq_py_dlpack_read_only(tensor)) {
      PyErr_SetString(PyExc_BufferError,
                      "a read-only tensor cannot be exported as a legacy DLPack capsule, which "
                      "cannot mark it read-only; ask for max_version >= (1, 0)");
      return NULL;
    }
    DLManagedTensor* managed = (DLManagedTensor*)calloc(1, sizeof(DLManagedTensor));
    if (managed == NULL) return PyErr_NoMemory();
    managed->manager_ctx = Py_NewRef(owner);
    managed->deleter = delete_exported_legacy;
    managed->dl_tensor = *view;
    capsule = PyCapsule_New(managed, kLegacyName, destroy_legacy_capsule);
    if (capsule == NULL) delete_exported_legacy(managed);
  }
  return capsule;
}
