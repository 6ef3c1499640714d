// A LoRA adapter of the expert GEMM: its two factors and its scale.
package org.moeq;

/**
 * The adapter {@code s · (x·Aₑᵀ)·Bₑᵀ} added by {@link Moeq#expertGemmLora}.
 *
 * @param a {@code [E, r, K]}, float32 or the activations' dtype, any strides (PEFT's
 *     {@code lora_A.weight [r·E, K]} as it is)
 * @param b {@code [E, N, r]}, any strides (PEFT's {@code lora_B.weight [N, r·E]} is the view with
 *     strides {@code (1, r·E, E)})
 * @param scale {@code s}, PEFT's {@code lora_alpha / r}
 */
public record Lora(Tensor a, Tensor b, float scale) {}
