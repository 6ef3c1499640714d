// A tensor moeq reads or writes: a view of a direct ByteBuffer (CPU), of a device
// address (GPU), or memory the library allocated. Closing frees its native parts once.
package org.moeq;

import java.lang.ref.Reference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import org.moeq.jni.Abi;
import org.moeq.jni.DLDataType;
import org.moeq.jni.DLDevice;
import org.moeq.jni.DLManagedTensorVersioned;
import org.moeq.jni.DLTensor;
import org.moeq.jni.Int64Array;
import org.moeq.jni.SWIGTYPE_p_p_DLManagedTensorVersioned;

/**
 * A DLPack tensor handed to moeq: shape, element type, device, optional strides (in elements).
 *
 * <p>CPU data are in the platform's byte order ({@link ByteOrder#nativeOrder()}). Close every
 * tensor (try-with-resources); closing twice is harmless, and every method but {@link #close()},
 * {@link #isClosed()} and {@link #toString()} throws {@link IllegalStateException} afterwards.
 */
public final class Tensor implements AutoCloseable {
  final DLTensor view;
  final Lifetime lifetime;
  private final DType dtype;
  private final Device device;
  private final long[] shape;
  private final long[] strides;
  /** A view of a read-only buffer (a file mapped READ_ONLY, say): moeq may only read it. */
  final boolean readOnly;

  private Tensor(DLTensor view, DType dtype, Device device, long[] shape, long[] strides, boolean readOnly,
      Runnable free) {
    this.view = view;
    this.readOnly = readOnly;
    this.dtype = dtype;
    this.device = device;
    this.shape = shape.clone();
    this.strides = strides == null ? null : strides.clone();
    this.lifetime = new Lifetime(this, "tensor", free);
  }

  /** A contiguous view of a direct buffer from its index 0 (not its position). */
  public static Tensor of(ByteBuffer buffer, DType dtype, long... shape) {
    return of(buffer, dtype, shape, null);
  }

  /** A strided view of a direct buffer from its index 0; {@code strides} null means contiguous. */
  public static Tensor of(ByteBuffer buffer, DType dtype, long[] shape, long[] strides) {
    checkLayout(dtype, shape, strides);
    if (buffer == null || !buffer.isDirect()) {
      throw MoeqException.invalidArgument("buffer",
          "expected a direct ByteBuffer (ByteBuffer.allocateDirect), got "
              + (buffer == null ? "null" : "a heap buffer"));
    }
    long needed = extentBytes(dtype, shape, strides);
    if (buffer.capacity() < needed) {
      throw MoeqException.invalidArgument("buffer",
          "expected at least " + needed + " bytes for " + dtype + " " + Arrays.toString(shape) + ", got "
              + buffer.capacity());
    }
    return view(Abi.jni_buffer_address(buffer), buffer, Device.CPU, dtype, shape, strides);
  }

  /**
   * A view of memory at {@code address} on {@code device}, such as a CUDA allocation made through
   * another binding; the caller keeps that memory alive while the tensor is in use.
   */
  public static Tensor atAddress(long address, Device device, DType dtype, long[] shape, long[] strides) {
    checkLayout(dtype, shape, strides);
    if (device == null) {
      throw MoeqException.invalidArgument("device", "expected a Device, got null");
    }
    return view(address, null, device, dtype, shape, strides);
  }

  /** Uninitialised, contiguous memory the library allocates on {@code device}; freed by close(). */
  public static Tensor empty(DType dtype, Device device, long... shape) {
    checkLayout(dtype, shape, null);
    if (device == null) {
      throw MoeqException.invalidArgument("device", "expected a Device, got null");
    }
    try (Int64Array nativeShape = int64Array(shape); DLDataType nativeType = new DLDataType();
         DLDevice nativeDevice = new DLDevice()) {
      dtype.writeTo(nativeType);
      device.writeTo(nativeDevice);
      SWIGTYPE_p_p_DLManagedTensorVersioned slot = Abi.new_managed_tensor_slot();
      try {
        MoeqException.check(
            Abi.moeq_tensor_empty(shape.length, nativeShape.cast(), nativeType, nativeDevice, slot));
        DLManagedTensorVersioned managed = Abi.managed_tensor_slot_value(slot);
        return new Tensor(
            managed.getDl_tensor(), dtype, device, shape, null, false, () -> Abi.moeq_tensor_free(managed));
      } finally {
        Abi.delete_managed_tensor_slot(slot);
      }
    }
  }

  /** A CPU float32 tensor holding a copy of {@code values}. */
  public static Tensor copyOf(float[] values, long... shape) {
    ByteBuffer buffer = directBuffer((long) values.length * Float.BYTES);
    buffer.asFloatBuffer().put(values);
    return of(buffer, DType.FLOAT32, shape);
  }

  /** A CPU int32 tensor holding a copy of {@code values}. */
  public static Tensor copyOf(int[] values, long... shape) {
    ByteBuffer buffer = directBuffer((long) values.length * Integer.BYTES);
    buffer.asIntBuffer().put(values);
    return of(buffer, DType.INT32, shape);
  }

  /** A CPU int64 tensor holding a copy of {@code values}. */
  public static Tensor copyOf(long[] values, long... shape) {
    ByteBuffer buffer = directBuffer((long) values.length * Long.BYTES);
    buffer.asLongBuffer().put(values);
    return of(buffer, DType.INT64, shape);
  }

  public DType dtype() {
    lifetime.requireOpen("tensor");
    return dtype;
  }

  public Device device() {
    lifetime.requireOpen("tensor");
    return device;
  }

  public long[] shape() {
    lifetime.requireOpen("tensor");
    return shape.clone();
  }

  /** Strides in elements, or null for a contiguous tensor. */
  public long[] strides() {
    lifetime.requireOpen("tensor");
    return strides == null ? null : strides.clone();
  }

  public long numel() {
    lifetime.requireOpen("tensor");
    return Arrays.stream(shape).reduce(1, Math::multiplyExact);
  }

  /** A copy of the bytes of a contiguous CPU tensor. */
  public byte[] toByteArray() {
    ByteBuffer staging = copyToStaging();
    byte[] bytes = new byte[staging.capacity()];
    staging.get(bytes);
    return bytes;
  }

  /** A copy of the elements of a contiguous CPU float32 tensor. */
  public float[] toFloatArray() {
    requireDtype(DType.FLOAT32);
    ByteBuffer staging = copyToStaging();
    float[] values = new float[staging.capacity() / Float.BYTES];
    staging.asFloatBuffer().get(values);
    return values;
  }

  /** Overwrites a contiguous CPU float32 tensor with {@code values} (exactly numel of them). */
  public void copyFrom(float[] values) {
    requireDtype(DType.FLOAT32);
    if (values.length != numel()) {
      throw MoeqException.invalidArgument("values", "expected " + numel() + " floats, got " + values.length);
    }
    ByteBuffer staging = directBuffer((long) values.length * Float.BYTES);
    staging.asFloatBuffer().put(values);
    copyBytes(staging, true);
  }

  /** True for a view of a read-only buffer, which no call may write. */
  public boolean isReadOnly() {
    lifetime.requireOpen("tensor");
    return readOnly;
  }

  public boolean isClosed() {
    return lifetime.isClosed();
  }

  /** Frees what the tensor owns (the library's memory, the native descriptor) once. */
  @Override
  public void close() {
    lifetime.close();
  }

  @Override
  public String toString() {
    return "Tensor(" + dtype + " " + Arrays.toString(shape) + " on " + device
        + (isClosed() ? ", closed)" : ")");
  }

  private static Tensor view(
      long address, ByteBuffer backing, Device device, DType dtype, long[] shape, long[] strides) {
    DLTensor view = new DLTensor();
    Int64Array nativeShape = int64Array(shape);
    Int64Array nativeStrides = strides == null ? null : int64Array(strides);
    view.setData(address);
    view.setNdim(shape.length);
    dtype.writeTo(view.getDtype());
    device.writeTo(view.getDevice());
    view.setShape(nativeShape.cast());
    if (nativeStrides != null) {
      view.setStrides(nativeStrides.cast());
    }
    Runnable free = () -> {
      view.delete();
      nativeShape.delete();
      if (nativeStrides != null) {
        nativeStrides.delete();
      }
      // The buffer's memory must outlive every call that reads it through the view.
      Reference.reachabilityFence(backing);
    };
    boolean readOnly = backing != null && backing.isReadOnly();
    return new Tensor(view, dtype, device, shape, strides, readOnly, free);
  }

  private static void checkLayout(DType dtype, long[] shape, long[] strides) {
    if (dtype == null) {
      throw MoeqException.invalidArgument("dtype", "expected a DType, got null");
    }
    if (shape == null || Arrays.stream(shape).anyMatch(size -> size < 0)) {
      throw MoeqException.invalidArgument(
          "shape", "expected non-negative sizes, got " + Arrays.toString(shape));
    }
    if (strides != null
        && (strides.length != shape.length || Arrays.stream(strides).anyMatch(stride -> stride < 0))) {
      throw MoeqException.invalidArgument(
          "strides", "expected " + shape.length + " non-negative strides, got " + Arrays.toString(strides));
    }
  }

  /** Bytes from the first element to one past the last one the layout reaches. */
  private static long extentBytes(DType dtype, long[] shape, long[] strides) {
    if (Arrays.stream(shape).anyMatch(size -> size == 0)) {
      return 0;
    }
    long lastOffset = 0;
    long contiguousStride = 1;
    for (int dim = shape.length - 1; dim >= 0; --dim) {
      long stride = strides == null ? contiguousStride : strides[dim];
      lastOffset = Math.addExact(lastOffset, Math.multiplyExact(shape[dim] - 1, stride));
      contiguousStride = Math.multiplyExact(contiguousStride, shape[dim]);
    }
    return Math.multiplyExact(lastOffset + 1, dtype.byteSize());
  }

  private static Int64Array int64Array(long[] values) {
    Int64Array array = new Int64Array(Math.max(1, values.length));
    for (int i = 0; i < values.length; ++i) {
      array.setitem(i, values[i]);
    }
    return array;
  }

  private static ByteBuffer directBuffer(long bytes) {
    return ByteBuffer.allocateDirect(Math.toIntExact(bytes)).order(ByteOrder.nativeOrder());
  }

  private void requireDtype(DType expected) {
    if (dtype() != expected) {
      throw MoeqException.invalidArgument("tensor", "expected dtype " + expected + ", got " + dtype);
    }
  }

  private ByteBuffer copyToStaging() {
    ByteBuffer staging = directBuffer(numel() * dtype().byteSize());
    copyBytes(staging, false);
    return staging;
  }

  /** Copies between the tensor and a staging buffer of its size, in either direction. */
  private void copyBytes(ByteBuffer staging, boolean intoTensor) {
    if (device().kind() != Device.Kind.CPU || strides != null) {
      throw MoeqException.invalidArgument("tensor", "copying needs a contiguous CPU tensor, this is " + this);
    }
    try (CallScope call = new CallScope()) {
      long data = (intoTensor ? call.output(this, "tensor") : call.tensor(this, "tensor")).getData();
      long stagingAddress = Abi.jni_buffer_address(staging);
      if (intoTensor) {
        Abi.jni_copy_bytes(data, stagingAddress, staging.capacity());
      } else {
        Abi.jni_copy_bytes(stagingAddress, data, staging.capacity());
      }
    }
  }
}
