// The backward of the expert GEMM with LoRA through Java, against a float64 reference.
package org.moeq;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.moeq.ExpertGemmCase.EXPERTS;
import static org.moeq.ExpertGemmCase.GROUP_END;
import static org.moeq.ExpertGemmCase.IN;
import static org.moeq.ExpertGemmCase.OUT;
import static org.moeq.ExpertGemmCase.RANK;
import static org.moeq.ExpertGemmCase.ROWS;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

class ExpertGemmBackwardTest {
  @TestFactory
  Stream<DynamicTest> gradientsMatchFloat64ForEveryLayout() {
    return Stream.of(WeightLayout.values()).map(layout -> DynamicTest.dynamicTest(layout.toString(), () -> {
      try (ExpertGemmCase problem = new ExpertGemmCase(layout, Format.NF4)) {
        Computed computed = backward(problem);
        for (int row = 0; row < GROUP_END[EXPERTS - 1]; ++row) {
          for (int k = 0; k < IN; ++k) {
            assertAccepted(problem.gradX(row, k), computed.gradX[row * IN + k], "grad_x", row, k);
          }
        }
        assertLoraGradients(problem, computed);
      }
    }));
  }

  /** The gradient tensors are filled with NaN first: every element must be written. */
  @Test
  void expertsWithoutRowsGetZeroLoraGradients() {
    try (ExpertGemmCase problem = new ExpertGemmCase(WeightLayout.EXPERT_OUT_IN, Format.NF4)) {
      Computed computed = backward(problem);
      int emptyExpert = 1;
      for (int j = 0; j < RANK; ++j) {
        for (int k = 0; k < IN; ++k) {
          assertTrue(
              computed.gradLoraA[(emptyExpert * RANK + j) * IN + k] == 0.0f, "grad_lora_a of expert 1");
        }
        for (int n = 0; n < OUT; ++n) {
          assertTrue(
              computed.gradLoraB[(n * RANK + j) * EXPERTS + emptyExpert] == 0.0f, "grad_lora_b of expert 1");
        }
      }
    }
  }

  @Test
  void theSavedXLoraAServesGradLoraBWithoutX() {
    try (ExpertGemmCase problem = new ExpertGemmCase(WeightLayout.EXPERT_OUT_IN, Format.NF4);
         ExpertGemmCase.Inputs in = problem.inputs();
         Tensor y = Tensor.empty(DType.FLOAT32, Device.CPU, ROWS, OUT);
         Tensor xLoraA = Tensor.empty(DType.FLOAT32, Device.CPU, ROWS, RANK);
         Tensor gradY = problem.gradYTensor()) {
      ByteBuffer gradLoraBStorage = ExpertGemmCase.peftStorage(new float[OUT * RANK * EXPERTS]);
      Moeq.expertGemmLora(in.x, problem.quantizedWeight, problem.layout, in.groupEnd, in.lora, y, xLoraA,
          Moeq.DEFAULT_STREAM);
      try (Tensor gradLoraB = ExpertGemmCase.peftView(gradLoraBStorage)) {
        Moeq.expertGemmLoraBackward(null, problem.quantizedWeight, problem.layout, in.groupEnd, in.lora,
            gradY, xLoraA, new Gradients(null, null, gradLoraB), Moeq.DEFAULT_STREAM);
      }
      float[] fromX = backward(problem).gradLoraB;
      float[] fromSaved = ExpertGemmCase.floats(gradLoraBStorage);
      for (int i = 0; i < fromX.length; ++i) {
        assertTrue(
            Math.abs(fromX[i] - fromSaved[i]) <= 1e-5 * (1 + Math.abs(fromX[i])), "grad_lora_b storage " + i);
      }
    }
  }

  @Test
  void gradXAloneNeedsNeitherXNorLora() {
    try (ExpertGemmCase problem = new ExpertGemmCase(WeightLayout.EXPERT_IN_OUT, Format.FP4);
         ExpertGemmCase.Inputs in = problem.inputs(); Tensor gradY = problem.gradYTensor();
         Tensor gradX = Tensor.empty(DType.FLOAT32, Device.CPU, ROWS, IN)) {
      Moeq.expertGemmLoraBackward(null, problem.quantizedWeight, problem.layout, in.groupEnd, null, gradY,
          new Gradients(gradX, null, null));
      float[] computed = gradX.toFloatArray();
      for (int row = 0; row < GROUP_END[EXPERTS - 1]; ++row) {
        for (int k = 0; k < IN; ++k) {
          ExpertGemmCase.Reference expected = new ExpertGemmCase.Reference();
          for (int n = 0; n < OUT; ++n) {
            expected.add(problem.gradY[row * OUT + n] * problem.w(ExpertGemmCase.expertOf(row), n, k));
          }
          assertAccepted(expected, computed[row * IN + k], "grad_x", row, k);
        }
      }
    }
  }

  /** The three gradients; grad_lora_b in PEFT's storage order. */
  private record Computed(float[] gradX, float[] gradLoraA, float[] gradLoraB) {}

  private static Computed backward(ExpertGemmCase problem) {
    float[] nan = new float[Math.max(ROWS * IN, EXPERTS * RANK * IN)];
    Arrays.fill(nan, Float.NaN);
    ByteBuffer gradLoraBStorage = ExpertGemmCase.peftStorage(Arrays.copyOf(nan, OUT * RANK * EXPERTS));
    try (ExpertGemmCase.Inputs in = problem.inputs(); Tensor gradY = problem.gradYTensor();
         Tensor gradX = Tensor.copyOf(Arrays.copyOf(nan, ROWS * IN), ROWS, IN);
         Tensor gradLoraA = Tensor.copyOf(Arrays.copyOf(nan, EXPERTS * RANK * IN), EXPERTS, RANK, IN);
         Tensor gradLoraB = ExpertGemmCase.peftView(gradLoraBStorage)) {
      Moeq.expertGemmLoraBackward(in.x, problem.quantizedWeight, problem.layout, in.groupEnd, in.lora, gradY,
          new Gradients(gradX, gradLoraA, gradLoraB));
      return new Computed(
          gradX.toFloatArray(), gradLoraA.toFloatArray(), ExpertGemmCase.floats(gradLoraBStorage));
    }
  }

  private static void assertLoraGradients(ExpertGemmCase problem, Computed computed) {
    for (int e = 0; e < EXPERTS; ++e) {
      for (int j = 0; j < RANK; ++j) {
        for (int k = 0; k < IN; ++k) {
          assertAccepted(problem.gradLoraA(e, j, k), computed.gradLoraA[(e * RANK + j) * IN + k],
              "grad_lora_a", e, j, k);
        }
        for (int n = 0; n < OUT; ++n) {
          assertAccepted(problem.gradLoraB(e, n, j), computed.gradLoraB[(n * RANK + j) * EXPERTS + e],
              "grad_lora_b", e, n, j);
        }
      }
    }
  }

  private static void assertAccepted(
      ExpertGemmCase.Reference expected, float actual, String name, int... index) {
    assertTrue(expected.accepts(actual, 0),
        name + Arrays.toString(index) + " = " + actual + ", float64 " + expected.value);
  }
}
