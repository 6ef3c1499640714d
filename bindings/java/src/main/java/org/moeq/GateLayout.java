// Where gate and up lie in the gate_up projection's output.
package org.moeq;

import org.moeq.jni.moeq_gate_layout;

/** The layout of {@code gate_up [M, 2I]} for {@link Moeq#swiglu}. */
public enum GateLayout {
  /** gate = columns {@code [0, I)}, up = {@code [I, 2I)}: Qwen3, GLM, Mixtral, DeepSeek. */
  HALVES(moeq_gate_layout.MOEQ_GATE_UP_HALVES),
  /** gate = even columns, up = odd ones: gpt-oss. */
  INTERLEAVED(moeq_gate_layout.MOEQ_GATE_UP_INTERLEAVED);

  final int code;

  GateLayout(int code) {
    this.code = code;
  }
}
