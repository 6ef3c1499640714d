// Where a tensor's memory lives: the host or one CUDA device.
package org.moeq;

import org.moeq.jni.DLDevice;
import org.moeq.jni.DLDeviceType;

/** The device of a {@link Tensor}: {@link #CPU} or {@link #cuda(int)}. */
public record Device(Kind kind, int id) {
  /** The kinds of memory moeq works on. */
  public enum Kind { CPU, CUDA }

  /** Host memory. */
  public static final Device CPU = new Device(Kind.CPU, 0);

  /** CUDA device {@code id} (the ordinal CUDA_VISIBLE_DEVICES leaves). */
  public static Device cuda(int id) {
    return new Device(Kind.CUDA, id);
  }

  void writeTo(DLDevice target) {
    target.setDevice_type(kind == Kind.CPU ? DLDeviceType.kDLCPU : DLDeviceType.kDLCUDA);
    target.setDevice_id(id);
  }

  @Override
  public String toString() {
    return kind == Kind.CPU ? "cpu" : "cuda:" + id;
  }
}
