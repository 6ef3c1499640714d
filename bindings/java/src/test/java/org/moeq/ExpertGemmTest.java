// The expert GEMM with LoRA through Java, forward, against a float64 reference.
package org.moeq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.moeq.ExpertGemmCase.EXPERTS;
import static org.moeq.ExpertGemmCase.GROUP_END;
import static org.moeq.ExpertGemmCase.IN;
import static org.moeq.ExpertGemmCase.OUT;
import static org.moeq.ExpertGemmCase.RANK;
import static org.moeq.ExpertGemmCase.ROWS;

import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

class ExpertGemmTest {
  private static final float UNTOUCHED = 42.0f;
  private static final int ROUTED_ROWS = GROUP_END[EXPERTS - 1];

  @TestFactory
  Stream<DynamicTest> matchesFloat64ForEveryLayoutAndFormat() {
    return Stream.of(WeightLayout.values())
        .flatMap(layout
            -> Stream.of(Format.values()).map(format -> DynamicTest.dynamicTest(layout + " " + format, () -> {
          try (ExpertGemmCase problem = new ExpertGemmCase(layout, format)) {
            float[] y = forward(problem, true);
            assertMatchesReference(problem, y, problem.x, true, 0);
          }
        })));
  }

  @Test
  void withoutLoraItIsTheQuantizedProductAlone() {
    try (ExpertGemmCase problem = new ExpertGemmCase(WeightLayout.EXPERT_OUT_IN, Format.NF4)) {
      assertMatchesReference(problem, forward(problem, false), problem.x, false, 0);
    }
  }

  @Test
  void rowsPastTheLastGroupEndAreLeftUntouched() {
    try (ExpertGemmCase problem = new ExpertGemmCase(WeightLayout.EXPERT_OUT_IN, Format.NF4)) {
      float[] y = forward(problem, true);
      for (int i = ROUTED_ROWS * OUT; i < ROWS * OUT; ++i) {
        assertEquals(UNTOUCHED, y[i], "y element " + i);
      }
    }
  }

  @Test
  void theSavedXLoraAIsXTimesATransposed() {
    try (ExpertGemmCase problem = new ExpertGemmCase(WeightLayout.EXPERT_OUT_IN, Format.NF4);
         ExpertGemmCase.Inputs in = problem.inputs();
         Tensor y = Tensor.empty(DType.FLOAT32, Device.CPU, ROWS, OUT);
         Tensor xLoraA = Tensor.empty(DType.FLOAT32, Device.CPU, ROWS, RANK)) {
      Moeq.expertGemmLora(in.x, problem.quantizedWeight, problem.layout, in.groupEnd, in.lora, y, xLoraA,
          Moeq.DEFAULT_STREAM);
      float[] saved = xLoraA.toFloatArray();
      for (int row = 0; row < ROUTED_ROWS; ++row) {
        for (int j = 0; j < RANK; ++j) {
          double expected = problem.xLoraA(row, j, problem.x);
          assertEquals(
              expected, saved[row * RANK + j], 1e-5 * (1 + Math.abs(expected)), "row " + row + ", j " + j);
        }
      }
    }
  }

  @Test
  void int64GroupEndRoutesLikeInt32() {
    try (ExpertGemmCase problem = new ExpertGemmCase(WeightLayout.EXPERT_OUT_IN, Format.NF4);
         ExpertGemmCase.Inputs in = problem.inputs();
         Tensor groupEnd = Tensor.copyOf(Arrays.stream(GROUP_END).asLongStream().toArray(), EXPERTS);
         Tensor y = Tensor.copyOf(filled(ROWS * OUT, UNTOUCHED), ROWS, OUT)) {
      Moeq.expertGemmLora(in.x, problem.quantizedWeight, problem.layout, groupEnd, in.lora, y);
      assertArrayEquals(forward(problem, true), y.toFloatArray());
    }
  }

  /** PEFT keeps LoRA in float32 while the activations are bfloat16. */
  @Test
  void bfloat16ActivationsWithFloat32LoraMatchFloat64ToBfloat16Precision() {
    try (ExpertGemmCase problem = new ExpertGemmCase(WeightLayout.EXPERT_OUT_IN, Format.NF4);
         ExpertGemmCase.Inputs in = problem.inputs(); Tensor x = TestData.bfloat16Tensor(problem.x, ROWS, IN);
         Tensor y = TestData.bfloat16Tensor(filled(ROWS * OUT, UNTOUCHED), ROWS, OUT)) {
      Moeq.expertGemmLora(x, problem.quantizedWeight, problem.layout, in.groupEnd, in.lora, y);
      assertMatchesReference(
          problem, TestData.bfloat16Values(y), TestData.roundedToBfloat16(problem.x), true, 0x1p-8);
    }
  }

  /** y with {@link #UNTOUCHED} in every row the GEMM must not write. */
  private static float[] forward(ExpertGemmCase problem, boolean withLora) {
    try (ExpertGemmCase.Inputs in = problem.inputs();
         Tensor y = Tensor.copyOf(filled(ROWS * OUT, UNTOUCHED), ROWS, OUT)) {
      Moeq.expertGemmLora(
          in.x, problem.quantizedWeight, problem.layout, in.groupEnd, withLora ? in.lora : null, y);
      return y.toFloatArray();
    }
  }

  private static void assertMatchesReference(
      ExpertGemmCase problem, float[] y, float[] activations, boolean withLora, double relative) {
    for (int row = 0; row < ROUTED_ROWS; ++row) {
      for (int n = 0; n < OUT; ++n) {
        ExpertGemmCase.Reference expected = problem.y(row, n, activations, withLora);
        float actual = y[row * OUT + n];
        assertTrue(expected.accepts(actual, relative),
            "y[" + row + "][" + n + "] = " + actual + ", float64 " + expected.value);
      }
    }
  }

  private static float[] filled(int count, float value) {
    float[] values = new float[count];
    Arrays.fill(values, value);
    return values;
  }
}
