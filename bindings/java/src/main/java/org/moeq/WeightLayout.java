// How a 3-D expert weight orders its dimensions.
package org.moeq;

import org.moeq.jni.moeq_weight_layout;

/** The layout of the expert weight of {@link Moeq#expertGemmLora}. */
public enum WeightLayout {
  /** {@code [E, N, K]}: Qwen3, GLM, Mixtral, DeepSeek. */
  EXPERT_OUT_IN(moeq_weight_layout.MOEQ_LAYOUT_EXPERT_OUT_IN),
  /** {@code [E, K, N]}: gpt-oss. */
  EXPERT_IN_OUT(moeq_weight_layout.MOEQ_LAYOUT_EXPERT_IN_OUT);

  final int code;

  WeightLayout(int code) {
    this.code = code;
  }
}
