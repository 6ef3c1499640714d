// A small expert GEMM problem with LoRA: its data, its moeq tensors, and the float64
// reference of the forward and the backward over the dequantized weight.
package org.moeq;

import java.nio.ByteBuffer;

/**
 * E = 4 experts, K = 128 inputs, N = 64 outputs, rank r = 4, M = 20 rows routed by
 * {@code groupEnd = [3, 3, 11, 17]}: expert 1 has no rows and rows 17..19 belong to no expert.
 * LoRA B is stored as PEFT stores {@code lora_B.weight} ({@code [N, r·E]}, expert fastest) and
 * handed to moeq as the strided view {@code [E, N, r]}.
 */
final class ExpertGemmCase implements AutoCloseable {
  static final int EXPERTS = 4;
  static final int IN = 128;
  static final int OUT = 64;
  static final int RANK = 4;
  static final int ROWS = 20;
  static final float SCALE = 0.5f;
  static final int[] GROUP_END = {3, 3, 11, 17};

  final WeightLayout layout;
  final float[] x = TestData.uniform(1, ROWS* IN, 1.0);
  final float[] gradY = TestData.uniform(2, ROWS* OUT, 1.0);
  final float[] loraA = TestData.uniform(3, EXPERTS* RANK* IN, 0.1);
  /** PEFT's lora_B.weight [N, r·E]: element (e, n, j) at n·r·E + j·E + e. */
  final float[] loraBPeft = TestData.uniform(4, OUT* RANK* EXPERTS, 0.1);
  /** The quantized weight, dequantized: logical [E, N, K] or [E, K, N] as {@link #layout} says. */
  final float[] weight;
  final QTensor quantizedWeight;

  ExpertGemmCase(WeightLayout layout, Format format) {
    this.layout = layout;
    long[] weightShape =
        layout == WeightLayout.EXPERT_OUT_IN ? new long[] {EXPERTS, OUT, IN} : new long[] {EXPERTS, IN, OUT};
    try (Tensor original = Tensor.copyOf(TestData.uniform(5, EXPERTS * OUT * IN, 0.05), weightShape)) {
      quantizedWeight = Moeq.quantize(original, format, 64, true);
    }
    try (Tensor dequantized = Moeq.dequantize(quantizedWeight)) {
      weight = dequantized.toFloatArray();
    }
  }

  /** x, group_end and the LoRA adapter as moeq tensors, closed together. */
  final class Inputs implements AutoCloseable {
    final Tensor x = Tensor.copyOf(ExpertGemmCase.this.x, ROWS, IN);
    final Tensor groupEnd = Tensor.copyOf(GROUP_END, EXPERTS);
    final Lora lora =
        new Lora(Tensor.copyOf(loraA, EXPERTS, RANK, IN), peftView(peftStorage(loraBPeft)), SCALE);

    @Override
    public void close() {
      x.close();
      groupEnd.close();
      lora.a().close();
      lora.b().close();
    }
  }

  Inputs inputs() {
    return new Inputs();
  }

  Tensor gradYTensor() {
    return Tensor.copyOf(gradY, ROWS, OUT);
  }

  /** A direct buffer holding {@code values}, PEFT's lora_B.weight storage. */
  static ByteBuffer peftStorage(float[] values) {
    ByteBuffer storage = TestData.directBuffer(values.length * Float.BYTES);
    storage.asFloatBuffer().put(values);
    return storage;
  }

  /** The [E, N, r] float32 view moeq reads PEFT's lora_B storage through: strides (1, r·E, E). */
  static Tensor peftView(ByteBuffer storage) {
    return Tensor.of(storage, DType.FLOAT32, new long[] {EXPERTS, OUT, RANK},
        new long[] {1, (long) RANK * EXPERTS, EXPERTS});
  }

  /** The float32 elements of a buffer, in storage order. */
  static float[] floats(ByteBuffer storage) {
    float[] values = new float[storage.capacity() / Float.BYTES];
    storage.asFloatBuffer().get(values);
    return values;
  }

  /** The expert owning {@code row}, or -1. */
  static int expertOf(int row) {
    for (int e = 0; e < EXPERTS; ++e) {
      if (row < GROUP_END[e]) {
        return e;
      }
    }
    return -1;
  }

  static int firstRow(int expert) {
    return expert == 0 ? 0 : GROUP_END[expert - 1];
  }

  double w(int e, int n, int k) {
    return layout == WeightLayout.EXPERT_OUT_IN ? weight[(e * OUT + n) * IN + k]
                                                : weight[(e * IN + k) * OUT + n];
  }

  double a(int e, int j, int k) {
    return loraA[(e * RANK + j) * IN + k];
  }

  double b(int e, int n, int j) {
    return loraBPeft[(n * RANK + j) * EXPERTS + e];
  }

  /** x_row · A_eᵀ, entry j. */
  double xLoraA(int row, int j, float[] activations) {
    int e = expertOf(row);
    double sum = 0;
    for (int k = 0; k < IN; ++k) {
      sum += activations[row * IN + k] * a(e, j, k);
    }
    return sum;
  }

  /** y[row][n] of a routed row, with or without LoRA, and the sum of |terms| (the scale of its rounding). */
  Reference y(int row, int n, float[] activations, boolean withLora) {
    int e = expertOf(row);
    Reference result = new Reference();
    for (int k = 0; k < IN; ++k) {
      result.add(activations[row * IN + k] * w(e, n, k));
    }
    if (withLora) {
      for (int j = 0; j < RANK; ++j) {
        result.add(SCALE * xLoraA(row, j, activations) * b(e, n, j));
      }
    }
    return result;
  }

  /** grad_x[row][k] of a routed row. */
  Reference gradX(int row, int k) {
    int e = expertOf(row);
    Reference result = new Reference();
    for (int n = 0; n < OUT; ++n) {
      result.add(gradY[row * OUT + n] * w(e, n, k));
    }
    for (int j = 0; j < RANK; ++j) {
      double gradYB = 0;
      for (int n = 0; n < OUT; ++n) {
        gradYB += gradY[row * OUT + n] * b(e, n, j);
      }
      result.add(SCALE * gradYB * a(e, j, k));
    }
    return result;
  }

  /** grad_lora_a[e][j][k]: zero for an expert without rows. */
  Reference gradLoraA(int e, int j, int k) {
    Reference result = new Reference();
    for (int row = firstRow(e); row < GROUP_END[e]; ++row) {
      double gradYB = 0;
      for (int n = 0; n < OUT; ++n) {
        gradYB += gradY[row * OUT + n] * b(e, n, j);
      }
      result.add(SCALE * gradYB * x[row * IN + k]);
    }
    return result;
  }

  /** grad_lora_b[e][n][j]: zero for an expert without rows. */
  Reference gradLoraB(int e, int n, int j) {
    Reference result = new Reference();
    for (int row = firstRow(e); row < GROUP_END[e]; ++row) {
      result.add(SCALE * gradY[row * OUT + n] * xLoraA(row, j, x));
    }
    return result;
  }

  @Override
  public void close() {
    quantizedWeight.close();
  }

  /** A float64 sum and the sum of the magnitudes of its terms. */
  static final class Reference {
    double value;
    double magnitude;

    void add(double term) {
      value += term;
      magnitude += Math.abs(term);
    }

    /** float32 accumulation: a few ulps of the terms' magnitude, plus {@code relative} of the value. */
    boolean accepts(double actual, double relative) {
      return Math.abs(actual - value) <= 1e-5 * magnitude + relative * Math.abs(value) + 1e-7;
    }
  }
}
