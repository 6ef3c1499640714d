// The 4-bit formats of bitsandbytes that moeq stores.
package org.moeq;

import org.moeq.jni.moeq_format;

/** The 4-bit code of a {@link QTensor}. */
public enum Format {
  /** NormalFloat4, bitsandbytes "nf4". */
  NF4(moeq_format.MOEQ_FORMAT_NF4),
  /** bitsandbytes "fp4": a sign and a 3-bit magnitude table. */
  FP4(moeq_format.MOEQ_FORMAT_FP4);

  final int code;

  Format(int code) {
    this.code = code;
  }
}
