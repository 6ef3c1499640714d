/* moeq.i — SWIG interface for the low-level JNI binding of include/moeq/moeq.h
 * (package org.moeq.jni). The hand-written classes in org.moeq sit on top of it. */
%module Abi

%{
#include <stdlib.h>
#include <string.h>

#include <moeq/moeq.h>
%}

%include <stdint.i>
%include <carrays.i>
%include <cpointer.i>
%include <various.i>
/* C enumerations become int constants: the ABI passes them as int32_t anyway. */
%include <enumtypeunsafe.swg>

/* The generated JNI class loads the native libraries before its first call. */
%pragma(java) jniclasscode=%{
  static {
    NativeLibrary.load();
  }
%}

/* Every address (tensor data, stream, workspace) crosses as a Java long. */
%typemap(jni) void*, const void* "jlong"
%typemap(jtype) void*, const void* "long"
%typemap(jstype) void*, const void* "long"
%typemap(javain) void*, const void* "$javainput"
%typemap(javaout) void*, const void* { return $jnicall; }
%typemap(in) void*, const void* %{ $1 = ($1_ltype)(intptr_t)$input; %}
%typemap(out) void*, const void* %{ $result = (jlong)(intptr_t)$1; %}

/* byte_offset and flags as Java long rather than BigInteger: they never reach 2^63. */
%apply int64_t { uint64_t };

/* No finalizers: org.moeq frees every native struct it owns exactly once, itself. */
%typemap(javafinalize) SWIGTYPE ""

/* Structs the hand-written layer allocates are AutoCloseable (close = free). */
%define MOEQ_CLOSEABLE(TYPE)
%typemap(javainterfaces) TYPE "AutoCloseable"
%typemap(javacode) TYPE %{
  @Override
  public void close() {
    delete();
  }
%}
%enddef

/* Argument structs: the constructor zero-fills and sets struct_size. */
%define MOEQ_SIZED_STRUCT(TYPE)
%extend TYPE {
  TYPE() {
    TYPE* value = (TYPE*)calloc(1, sizeof(TYPE));
    if (value != NULL) value->struct_size = (uint32_t)sizeof(TYPE);
    return value;
  }
}
%enddef

MOEQ_CLOSEABLE(DLTensor)
MOEQ_CLOSEABLE(DLDataType)
MOEQ_CLOSEABLE(DLDevice)
MOEQ_CLOSEABLE(Int64Array)
MOEQ_CLOSEABLE(SizeSlot)
MOEQ_CLOSEABLE(struct moeq_quant_config)
MOEQ_CLOSEABLE(struct moeq_quant_layout)
MOEQ_CLOSEABLE(struct moeq_qtensor)
MOEQ_CLOSEABLE(struct moeq_expert_gemm_args)
MOEQ_CLOSEABLE(struct moeq_expert_gemm_grad_args)
MOEQ_CLOSEABLE(struct moeq_swiglu_config)
/* Forward and backward arguments share their routing, weight and LoRA fields. */
%typemap(javainterfaces) struct moeq_expert_gemm_args "AutoCloseable, ExpertGemmCommonArgs"
%typemap(javainterfaces) struct moeq_expert_gemm_grad_args "AutoCloseable, ExpertGemmCommonArgs"
MOEQ_SIZED_STRUCT(moeq_quant_config)
MOEQ_SIZED_STRUCT(moeq_quant_layout)
MOEQ_SIZED_STRUCT(moeq_qtensor)
MOEQ_SIZED_STRUCT(moeq_expert_gemm_args)
MOEQ_SIZED_STRUCT(moeq_expert_gemm_grad_args)
MOEQ_SIZED_STRUCT(moeq_swiglu_config)

/* Shapes and strides (int64_t*), and the out-parameters of moeq_tensor_empty and
 * the workspace-size queries. */
%array_class(int64_t, Int64Array);
%pointer_functions(DLManagedTensorVersioned*, managed_tensor_slot);
%pointer_class(size_t, SizeSlot);

/* DLPack: only the tensor types the ABI uses. */
%ignore DLManagedTensor;
%ignore DLManagedTensorVersioned::deleter;
%ignore DLPackExchangeAPI;
%ignore DLPackExchangeAPIHeader;
%ignore DLPACK_FLAG_BITMASK_READ_ONLY;
%ignore DLPACK_FLAG_BITMASK_IS_COPIED;
%ignore DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED;

/* GCC's visibility attribute on MOEQ_API means nothing to the wrapper. */
#define __attribute__(x)
/* dlpack.h writes enum values as 0U, 1U, ...: read them through JNI. moeq.h's
 * constants are plain integers and become compile-time Java constants. */
%javaconst(0);
%include <dlpack/dlpack.h>
%javaconst(1);
%include <moeq/moeq.h>

/* Host memory helpers: direct java.nio buffers have no public address in Java. */
%apply unsigned char* NIOBUFFER { unsigned char* direct_buffer };
%inline %{
/* The address of a direct buffer's first byte (index 0, whatever its position). */
static void* jni_buffer_address(unsigned char* direct_buffer) { return direct_buffer; }

/* Copies `bytes` bytes between two host addresses. */
static void jni_copy_bytes(void* destination, const void* source, int64_t bytes) {
  memcpy(destination, source, (size_t)bytes);
}
%}
