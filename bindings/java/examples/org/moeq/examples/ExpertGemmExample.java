// Example: quantize a [E, N, K] expert weight to NF4 and run the expert GEMM with a
// LoRA adapter, checked against a float64 product over the dequantized weight.
package org.moeq.examples;

import java.util.SplittableRandom;
import org.moeq.DType;
import org.moeq.Device;
import org.moeq.Format;
import org.moeq.Lora;
import org.moeq.Moeq;
import org.moeq.QTensor;
import org.moeq.Tensor;
import org.moeq.WeightLayout;

/** Run with the moeq jars on the class path; prints the memory saved and the largest error. */
public final class ExpertGemmExample {
  private static final int EXPERTS = 8;
  private static final int OUT_FEATURES = 256; // N
  private static final int IN_FEATURES = 512; // K
  private static final int RANK = 16; // r
  private static final float LORA_SCALE = 2.0f; // lora_alpha / r
  private static final int[] ROWS_PER_EXPERT = {5, 0, 12, 3, 9, 0, 7, 4};

  private ExpertGemmExample() {}

  public static void main(String[] args) {
    SplittableRandom random = new SplittableRandom(7);
    int rows = java.util.Arrays.stream(ROWS_PER_EXPERT).sum();
    int[] groupEnd = new int[EXPERTS];
    for (int e = 0, end = 0; e < EXPERTS; ++e) {
      end += ROWS_PER_EXPERT[e];
      groupEnd[e] = end;
    }
    float[] x = gaussian(random, rows * IN_FEATURES, 1.0);
    float[] loraA = gaussian(random, EXPERTS * RANK * IN_FEATURES, 0.02);
    float[] loraB = gaussian(random, EXPERTS * OUT_FEATURES * RANK, 0.02);

    try (Tensor weight = Tensor.copyOf(gaussian(random, EXPERTS * OUT_FEATURES * IN_FEATURES, 0.02), EXPERTS,
             OUT_FEATURES, IN_FEATURES);
         QTensor quantized = Moeq.quantize(weight, Format.NF4, 64, true);
         Tensor dequantized = Moeq.dequantize(quantized);
         Tensor xTensor = Tensor.copyOf(x, rows, IN_FEATURES);
         Tensor groupEndTensor = Tensor.copyOf(groupEnd, EXPERTS);
         Tensor a = Tensor.copyOf(loraA, EXPERTS, RANK, IN_FEATURES);
         Tensor b = Tensor.copyOf(loraB, EXPERTS, OUT_FEATURES, RANK);
         Tensor y = Tensor.empty(DType.FLOAT32, Device.CPU, rows, OUT_FEATURES)) {
      Moeq.expertGemmLora(
          xTensor, quantized, WeightLayout.EXPERT_OUT_IN, groupEndTensor, new Lora(a, b, LORA_SCALE), y);

      long quantizedBytes = quantized.packed().numel() + quantized.absmax().numel()
          + 4 * (quantized.nestedAbsmax().numel() + quantized.nestedCode().numel() + 1);
      System.out.printf("%s: %d float32 bytes -> %d bytes%n", quantized, weight.numel() * 4, quantizedBytes);
      double worst = largestError(y.toFloatArray(), x, dequantized.toFloatArray(), loraA, loraB, groupEnd);
      System.out.printf(
          "y %s, largest difference from float64: %.2e%n", java.util.Arrays.toString(y.shape()), worst);
      if (worst > 1e-3) {
        throw new AssertionError("the expert GEMM disagrees with float64");
      }
    }
  }

  /** max |y - (x·Wᵀ + s·(x·Aᵀ)·Bᵀ)| over every routed row, in float64. */
  private static double largestError(
      float[] y, float[] x, float[] weight, float[] loraA, float[] loraB, int[] groupEnd) {
    double worst = 0;
    for (int e = 0, row = 0; e < EXPERTS; ++e) {
      for (; row < groupEnd[e]; ++row) {
        double[] xa = new double[RANK];
        for (int j = 0; j < RANK; ++j) {
          for (int k = 0; k < IN_FEATURES; ++k) {
            xa[j] += (double) x[row * IN_FEATURES + k] * loraA[(e * RANK + j) * IN_FEATURES + k];
          }
        }
        for (int n = 0; n < OUT_FEATURES; ++n) {
          double expected = 0;
          for (int k = 0; k < IN_FEATURES; ++k) {
            expected += (double) x[row * IN_FEATURES + k] * weight[(e * OUT_FEATURES + n) * IN_FEATURES + k];
          }
          for (int j = 0; j < RANK; ++j) {
            expected += LORA_SCALE * xa[j] * loraB[(e * OUT_FEATURES + n) * RANK + j];
          }
          worst = Math.max(worst, Math.abs(y[row * OUT_FEATURES + n] - expected));
        }
      }
    }
    return worst;
  }

  private static float[] gaussian(SplittableRandom random, int count, double deviation) {
    float[] values = new float[count];
    for (int i = 0; i < count; ++i) {
      // Box-Muller: SplittableRandom has no nextGaussian in Java 17.
      double u = 1.0 - random.nextDouble();
      values[i] =
          (float) (deviation * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.nextDouble()));
    }
    return values;
  }
}
