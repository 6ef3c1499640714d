// Element types of the tensors moeq reads and writes, as DLPack data types.
package org.moeq;

import org.moeq.jni.DLDataType;
import org.moeq.jni.DLDataTypeCode;

/** The element type of a {@link Tensor}. */
public enum DType {
  FLOAT32(DLDataTypeCode.kDLFloat, 32),
  FLOAT16(DLDataTypeCode.kDLFloat, 16),
  /** bfloat16; Java has no such type: the data are the upper 16 bits of a float32. */
  BFLOAT16(DLDataTypeCode.kDLBfloat, 16),
  UINT8(DLDataTypeCode.kDLUInt, 8),
  INT32(DLDataTypeCode.kDLInt, 32),
  INT64(DLDataTypeCode.kDLInt, 64);

  private final int code;
  private final int bits;

  DType(int code, int bits) {
    this.code = code;
    this.bits = bits;
  }

  /** Bytes per element. */
  public int byteSize() {
    return bits / 8;
  }

  void writeTo(DLDataType target) {
    target.setCode((short) code);
    target.setBits((short) bits);
    target.setLanes(1);
  }

  /** The Java type of a DLPack data type the library reports (one lane). */
  static DType of(DLDataType type) {
    for (DType candidate : values()) {
      if (candidate.code == type.getCode() && candidate.bits == type.getBits() && type.getLanes() == 1) {
        return candidate;
      }
    }
    throw new IllegalStateException("moeq reported a dtype with no Java counterpart: code " + type.getCode()
        + ", bits " + type.getBits());
  }
}
