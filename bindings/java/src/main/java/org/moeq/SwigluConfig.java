// The form of the gated activation between the projections.
package org.moeq;

/**
 * {@code out = (clamp(up, -limit, limit) + upOffset) · g · sigmoid(alpha · g)}, {@code g = min(gate, limit)}.
 *
 * @param layout where gate and up lie
 * @param alpha slope inside the sigmoid (finite)
 * @param limit clamp bound, {@code > 0}; {@link Float#POSITIVE_INFINITY}: no clamp
 * @param upOffset added to the clamped up (finite)
 */
public record SwigluConfig(GateLayout layout, float alpha, float limit, float upOffset) {
  /** {@code silu(gate) · up} over halves: Qwen3, GLM, Mixtral, DeepSeek. */
  public static SwigluConfig swiglu() {
    return new SwigluConfig(GateLayout.HALVES, 1.0f, Float.POSITIVE_INFINITY, 0.0f);
  }

  /** gpt-oss' form: interleaved, alpha 1.702, limit 7, up offset 1. */
  public static SwigluConfig gptOss() {
    return new SwigluConfig(GateLayout.INTERLEAVED, 1.702f, 7.0f, 1.0f);
  }
}
