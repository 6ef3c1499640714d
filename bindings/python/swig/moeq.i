/* moeq.i — SWIG interface of `moeq.capi`: the C ABI of include/moeq/moeq.h as it is,
 * with the GIL released around every library call, failed statuses raised as
 * moeq.Error, and the DLPack glue (HeldTensor) the `moeq` package is built on. */
%module(package="moeq") capi

%{
#include <moeq/moeq.h>

#include "cuda_runtime_glue.h"
#include "dlpack_capsule.h"

/* Raises the moeq.Error subclass for `status` with this thread's moeq_last_error(). */
static void moeq_py_raise_status(moeq_status status) {
  const char* message = moeq_last_error();
  PyObject* errors = PyImport_ImportModule("moeq._errors");
  if (errors == NULL) return;
  PyObject* error = PyObject_CallMethod(errors, "error_from_status", "iss", (int)status,
                                        moeq_status_name(status), message);
  Py_DECREF(errors);
  if (error == NULL) return;
  PyErr_SetObject((PyObject*)Py_TYPE(error), error);
  Py_DECREF(error);
}

static int moeq_py_dtype_from(PyObject* value, DLDataType* dtype) {
  int code = 0, bits = 0, lanes = 0;
  if (!PyArg_ParseTuple(value, "iii;dtype: expected a (code, bits, lanes) tuple", &code, &bits,
                        &lanes))
    return 0;
  dtype->code = (uint8_t)code;
  dtype->bits = (uint8_t)bits;
  dtype->lanes = (uint16_t)lanes;
  return 1;
}

static void* moeq_py_pointer_from(PyObject* value) {
  return value == Py_None ? NULL : PyLong_AsVoidPtr(value);
}
%}

%include <stdint.i>
%import "dlpack/dlpack.h"

/* ---------------------------------------------------------------- typemaps */

/* Every moeq_status: OK gives None (or the outputs below); anything else raises. */
%typemap(out) moeq_status {
  if ($1 != MOEQ_OK) {
    moeq_py_raise_status($1);
    SWIG_fail;
  }
  $result = SWIG_Py_Void();
}

/* Shapes travel as Python sequences of ints. */
%typemap(in) (int32_t ndim, const int64_t* shape) (int64_t sizes[16]) {
  PyObject* items = PySequence_Fast($input, "shape: expected a sequence of ints");
  if (items == NULL) SWIG_fail;
  const Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
  for (Py_ssize_t i = 0; i < count && i < 16; ++i)
    sizes[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(items, i));
  Py_DECREF(items);
  if (count > 16) SWIG_exception_fail(SWIG_ValueError, "shape: at most 16 dims");
  if (PyErr_Occurred()) SWIG_fail;
  $1 = (int32_t)count;
  $2 = sizes;
}

/* moeq_qtensor.shape, a fixed array: set from a sequence (zero-filled), read as a tuple. */
%typemap(in) int64_t shape[ANY] (int64_t sizes[$1_dim0]) {
  PyObject* items = PySequence_Fast($input, "shape: expected a sequence of ints");
  if (items == NULL) SWIG_fail;
  const Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
  for (Py_ssize_t i = 0; i < $1_dim0; ++i)
    sizes[i] = i < count ? PyLong_AsLongLong(PySequence_Fast_GET_ITEM(items, i)) : 0;
  Py_DECREF(items);
  if (count > $1_dim0) SWIG_exception_fail(SWIG_ValueError, "shape: too many dims");
  if (PyErr_Occurred()) SWIG_fail;
  $1 = sizes;
}
%typemap(memberin) int64_t shape[ANY] {
  memcpy($1, $input, sizeof(int64_t) * $1_dim0);
}
%typemap(out) int64_t shape[ANY] {
  $result = PyTuple_New($1_dim0);
  for (Py_ssize_t i = 0; i < $1_dim0; ++i) PyTuple_SET_ITEM($result, i, PyLong_FromLongLong($1[i]));
}

/* DLDataType as (code, bits, lanes) and DLDevice as (device_type, device_id). */
%typemap(in) DLDataType {
  if (!moeq_py_dtype_from($input, &$1)) SWIG_fail;
}
%typemap(in) DLDataType* (DLDataType dtype) {
  if (!moeq_py_dtype_from($input, &dtype)) SWIG_fail;
  $1 = &dtype;
}
%typemap(out) DLDataType* {
  $result = Py_BuildValue("(iii)", $1->code, $1->bits, $1->lanes);
}
%typemap(in) DLDevice {
  int device_type = 0, device_id = 0;
  if (!PyArg_ParseTuple($input, "ii;device: expected a (device_type, device_id) tuple",
                        &device_type, &device_id))
    SWIG_fail;
  $1.device_type = (DLDeviceType)device_type;
  $1.device_id = device_id;
}

/* Streams and workspaces are raw addresses: an int, or None for NULL. */
%typemap(in) void* stream, void* workspace {
  $1 = moeq_py_pointer_from($input);
  if (PyErr_Occurred()) SWIG_fail;
}

/* Outputs through pointers come back as the return value, replacing the status's None
 * (each function has one; unlike %append_output this reads the same in every SWIG 4). */
%define %moeq_return_output(OBJECT)
  Py_XDECREF($result);
  $result = OBJECT;
%enddef
%typemap(in, numinputs=0) moeq_quant_layout* out (moeq_quant_layout layout) {
  memset(&layout, 0, sizeof(layout));
  layout.struct_size = sizeof(layout);
  $1 = &layout;
}
%typemap(argout) moeq_quant_layout* out {
  moeq_quant_layout* copy = (moeq_quant_layout*)malloc(sizeof(moeq_quant_layout));
  if (copy == NULL) SWIG_exception_fail(SWIG_MemoryError, "out of host memory");
  *copy = *$1;
  %moeq_return_output(SWIG_NewPointerObj(copy, $1_descriptor, SWIG_POINTER_OWN));
}
%typemap(in, numinputs=0) size_t* bytes (size_t count) {
  count = 0;
  $1 = &count;
}
%typemap(argout) size_t* bytes {
  %moeq_return_output(PyLong_FromSize_t(*$1));
}
%typemap(in, numinputs=0) DLManagedTensorVersioned** out (DLManagedTensorVersioned* managed) {
  managed = NULL;
  $1 = &managed;
}
%typemap(argout) DLManagedTensorVersioned** out {
  moeq_py_tensor* held = moeq_py_dlpack_hold(*$1);
  if (held == NULL) SWIG_fail;
  %moeq_return_output(SWIG_NewPointerObj(held, SWIGTYPE_p_moeq_py_tensor, SWIG_POINTER_OWN));
}

/* Argument structs start with struct_size: their constructors set it. */
%define MOEQ_SIZED_STRUCT(TYPE)
%extend TYPE {
  TYPE() {
    TYPE* self = (TYPE*)calloc(1, sizeof(TYPE));
    if (self != NULL) self->struct_size = sizeof(TYPE);
    return self;
  }
  ~TYPE() { free($self); }
}
%enddef
MOEQ_SIZED_STRUCT(moeq_quant_config)
MOEQ_SIZED_STRUCT(moeq_quant_layout)
MOEQ_SIZED_STRUCT(moeq_qtensor)
MOEQ_SIZED_STRUCT(moeq_expert_gemm_args)
MOEQ_SIZED_STRUCT(moeq_expert_gemm_grad_args)
MOEQ_SIZED_STRUCT(moeq_swiglu_config)

%ignore moeq_tensor_free; /* HeldTensor frees what moeq_tensor_empty allocated */

/* ---------------------------------------------------------------- the ABI */

#define __attribute__(x) /* SWIG's parser skips the export attribute of MOEQ_API */
%include "moeq/moeq.h"

%constant int DLPACK_MAJOR = DLPACK_MAJOR_VERSION;
%constant int DLPACK_MINOR = DLPACK_MINOR_VERSION;

/* ------------------------------------- DLPack glue: holds the GIL (Python objects) */

%nothread;

/* A DLPack tensor the package holds (imported from a capsule, or allocated by
 * moeq_tensor_empty); its deleter runs when the HeldTensor is collected. */
%rename(HeldTensor) moeq_py_tensor;
%nodefaultctor moeq_py_tensor;
typedef struct moeq_py_tensor {} moeq_py_tensor;
%extend moeq_py_tensor {
  ~moeq_py_tensor() { moeq_py_dlpack_release($self); }
  /* The borrowed DLTensor view to put in moeq's argument structs. */
  DLTensor* dl_tensor() { return moeq_py_dlpack_view($self); }
  int read_only() { return moeq_py_dlpack_read_only($self); }
  /* Reinterprets the elements as `dtype` (the caller keeps the element size). */
  void set_dtype(DLDataType* dtype) { moeq_py_dlpack_view($self)->dtype = *dtype; }
  /* (data_ptr, shape, strides or None, (code, bits, lanes), (device_type, device_id)) */
  PyObject* describe() { return moeq_py_dlpack_describe($self); }
  /* A new DLPack capsule of this tensor that keeps `owner` alive. */
  PyObject* capsule(PyObject* owner, int versioned) {
    return moeq_py_dlpack_export($self, owner, versioned);
  }
  /* Copies all bytes of `source` into this tensor (both contiguous, same byte count). */
  PyObject* copy_from(const moeq_py_tensor* source) { return moeq_py_copy_bytes($self, source); }
}

%newobject moeq_py_dlpack_import;
%exception moeq_py_dlpack_import {
  $action
  if (result == NULL) SWIG_fail;
}
%rename(import_capsule) moeq_py_dlpack_import;
/* Consumes a "dltensor_versioned" / "dltensor" capsule into a HeldTensor. */
moeq_py_tensor* moeq_py_dlpack_import(PyObject* capsule);

%rename(stream_wait) moeq_py_stream_wait;
/* Orders CUDA stream `consumer` after the work queued so far on `producer`. */
PyObject* moeq_py_stream_wait(uintptr_t consumer, uintptr_t producer, int device_id);

%clearnothread;
