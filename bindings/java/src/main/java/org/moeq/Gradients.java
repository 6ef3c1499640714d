// The outputs of the expert GEMM's backward, each optional.
package org.moeq;

/**
 * Where {@link Moeq#expertGemmLoraBackward} writes; a null component is not computed. Every
 * output is overwritten, not accumulated.
 *
 * @param x {@code [M, K]}, the dtype of the activations
 * @param loraA {@code [E, r, K]}, the dtype of {@link Lora#a()}, any strides
 * @param loraB {@code [E, N, r]}, the dtype of {@link Lora#b()}, any strides
 */
public record Gradients(Tensor x, Tensor loraA, Tensor loraB) {}
