// Every bad argument throws a MoeqException whose message starts with the argument's
// name, whether the Java layer or the library rejects it; nothing crashes.
package org.moeq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.moeq.ExpertGemmCase.EXPERTS;
import static org.moeq.ExpertGemmCase.IN;
import static org.moeq.ExpertGemmCase.OUT;
import static org.moeq.ExpertGemmCase.RANK;
import static org.moeq.ExpertGemmCase.ROWS;
import static org.moeq.ExpertGemmCase.SCALE;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.function.Executable;

class ErrorPathTest {
  private static final WeightLayout LAYOUT = WeightLayout.EXPERT_OUT_IN;
  private static final List<AutoCloseable> OPENED = new ArrayList<>();
  private static ExpertGemmCase problem;
  private static QTensor weight;
  private static Tensor x;
  private static Tensor groupEnd;
  private static Lora lora;
  private static Tensor y;
  private static Tensor gradY;

  private record BadCall(String description, String argument, Executable call) {}

  @BeforeAll
  static void openValidArguments() {
    problem = new ExpertGemmCase(LAYOUT, Format.NF4);
    weight = problem.quantizedWeight;
    ExpertGemmCase.Inputs inputs = opened(problem.inputs());
    x = inputs.x;
    groupEnd = inputs.groupEnd;
    lora = inputs.lora;
    y = floats(ROWS, OUT);
    gradY = opened(problem.gradYTensor());
  }

  @AfterAll
  static void closeEverything() throws Exception {
    for (AutoCloseable resource : OPENED) {
      resource.close();
    }
    problem.close();
  }

  @TestFactory
  Stream<DynamicTest> everyBadArgumentThrowsNamingTheArgument() {
    return Stream.of(quantizeCalls(), tensorCalls(), forwardCalls(), backwardCalls())
        .flatMap(List::stream)
        .map(bad -> DynamicTest.dynamicTest(bad.description + " names " + bad.argument, () -> {
          MoeqException error = assertThrows(MoeqException.class, bad.call);
          assertEquals("MOEQ_ERR_INVALID_ARGUMENT", error.statusName());
          assertTrue(error.detail().startsWith(bad.argument + ":"), error.getMessage());
          assertTrue(error.getMessage().startsWith("MOEQ_ERR_INVALID_ARGUMENT: " + bad.argument),
              error.getMessage());
        }));
  }

  /**
   * MOEQ_ERR_NO_DEVICE where CUDA is built but no GPU is visible, MOEQ_ERR_UNSUPPORTED in a CPU-only build.
   */
  @Test
  void cudaMemoryWhereNoGpuCanBeUsedIsAnErrorNotACrash() {
    assumeFalse(Moeq.cudaAvailable(), "this machine has a usable GPU");
    Set<String> expected = Set.of("MOEQ_ERR_NO_DEVICE", "MOEQ_ERR_UNSUPPORTED");
    MoeqException error =
        assertThrows(MoeqException.class, () -> Tensor.empty(DType.FLOAT32, Device.cuda(0), 4));
    assertTrue(expected.contains(error.statusName()), error.getMessage());
    try (Tensor onGpu = Tensor.atAddress(0x1000, Device.cuda(0), DType.FLOAT32, new long[] {64}, null)) {
      error = assertThrows(MoeqException.class, () -> Moeq.quantize(onGpu, Format.NF4, 64, false));
      assertTrue(expected.contains(error.statusName()), error.getMessage());
    }
  }

  private static List<BadCall> quantizeCalls() {
    return List.of(
        new BadCall("quantize without an input", "input", () -> Moeq.quantize(null, Format.NF4, 64, false)),
        new BadCall("quantize an int32 tensor", "input",
            () -> Moeq.quantize(opened(Tensor.empty(DType.INT32, Device.CPU, 64)), Format.NF4, 64, false)),
        new BadCall("quantize a strided view", "input",
            ()
                -> Moeq.quantize(opened(Tensor.of(TestData.directBuffer(512), DType.FLOAT32, new long[] {64},
                                     new long[] {2})),
                    Format.NF4, 64, false)),
        new BadCall("quantize without a format", "format", () -> Moeq.quantize(x, null, 64, false)),
        new BadCall("quantize with a blocksize that is no power of two", "config.blocksize",
            () -> Moeq.quantize(x, Format.NF4, 48, false)),
        new BadCall("dequantize nothing", "q", () -> Moeq.dequantize(null)),
        new BadCall(
            "dequantize into another shape", "out", () -> Moeq.dequantize(weight, floats(EXPERTS, OUT))),
        new BadCall("dequantize into int32", "out",
            () -> Moeq.dequantize(weight, opened(Tensor.empty(DType.INT32, Device.CPU, EXPERTS, OUT, IN)))));
  }

  private static List<BadCall> tensorCalls() {
    return List.of(new BadCall("view a heap buffer", "buffer",
                       () -> Tensor.of(ByteBuffer.allocate(64), DType.FLOAT32, 16)),
        new BadCall("view a buffer too small for its shape", "buffer",
            () -> Tensor.of(TestData.directBuffer(60), DType.FLOAT32, 16)),
        new BadCall(
            "allocate a negative size", "shape", () -> Tensor.empty(DType.FLOAT32, Device.CPU, 4, -1)),
        new BadCall("give strides of another rank than the shape", "strides",
            () -> Tensor.of(TestData.directBuffer(64), DType.FLOAT32, new long[] {4, 4}, new long[] {1})),
        new BadCall("read int32 as floats", "tensor", () -> groupEnd.toFloatArray()),
        new BadCall("copy in the wrong number of floats", "values", () -> y.copyFrom(new float[3])),
        new BadCall("describe a quantized tensor without its packed bytes", "packed",
            () -> QTensor.of(Format.NF4, 64, DType.FLOAT32, new long[] {128}, null, floats(2))));
  }

  private static List<BadCall> forwardCalls() {
    return List.of(
        new BadCall("forward without x", "x", () -> forward(null, weight, groupEnd, lora, y, null)),
        new BadCall("forward with x of the wrong width", "x",
            () -> forward(floats(ROWS, IN + 1), weight, groupEnd, lora, y, null)),
        new BadCall("forward without a weight", "weight", () -> forward(x, null, groupEnd, lora, y, null)),
        new BadCall("forward with a 2-D weight", "weight",
            () -> forward(x, quantized(OUT, IN), groupEnd, lora, y, null)),
        new BadCall("forward without a layout", "weight_layout",
            () -> Moeq.expertGemmLora(x, weight, null, groupEnd, lora, y)),
        new BadCall("forward with a group_end per expert too few", "group_end",
            () -> forward(x, weight, opened(Tensor.copyOf(new int[] {3, 11, 17}, 3)), lora, y, null)),
        new BadCall("forward with decreasing row ends", "group_end",
            () -> forward(x, weight, opened(Tensor.copyOf(new int[] {3, 2, 11, 17}, 4)), lora, y, null)),
        new BadCall("forward with a row end past M", "group_end",
            ()
                -> forward(
                    x, weight, opened(Tensor.copyOf(new int[] {3, 3, 11, ROWS + 1}, 4)), lora, y, null)),
        new BadCall("forward with float row ends", "group_end",
            () -> forward(x, weight, floats(EXPERTS), lora, y, null)),
        new BadCall("forward with lora_a of the wrong input width", "lora_a",
            ()
                -> forward(
                    x, weight, groupEnd, new Lora(floats(EXPERTS, RANK, IN / 2), lora.b(), SCALE), y, null)),
        new BadCall("forward with lora_b of another rank", "lora_b",
            ()
                -> forward(
                    x, weight, groupEnd, new Lora(lora.a(), floats(EXPERTS, OUT, RANK + 1), SCALE), y, null)),
        new BadCall("forward with lora_a but no lora_b", "lora_b",
            () -> forward(x, weight, groupEnd, new Lora(lora.a(), null, SCALE), y, null)),
        new BadCall("forward with a NaN LoRA scale", "lora_scale",
            () -> forward(x, weight, groupEnd, new Lora(lora.a(), lora.b(), Float.NaN), y, null)),
        new BadCall("forward without y", "y", () -> forward(x, weight, groupEnd, lora, null, null)),
        new BadCall("forward into y of the wrong shape", "y",
            () -> forward(x, weight, groupEnd, lora, floats(ROWS, OUT + 1), null)),
        new BadCall("forward into y of another dtype than x", "y",
            ()
                -> forward(x, weight, groupEnd, lora,
                    opened(TestData.bfloat16Tensor(new float[ROWS * OUT], ROWS, OUT)), null)),
        new BadCall("forward into a y overlapping x", "y", ErrorPathTest::forwardIntoOverlappingY),
        new BadCall("forward into a read-only y", "y",
            ()
                -> forward(x, weight, groupEnd, lora,
                    opened(Tensor.of(
                        TestData.directBuffer(ROWS * OUT * 4).asReadOnlyBuffer(), DType.FLOAT32, ROWS, OUT)),
                    null)),
        new BadCall("forward saving x_lora_a of the wrong shape", "x_lora_a",
            () -> forward(x, weight, groupEnd, lora, y, floats(ROWS, RANK + 1))),
        new BadCall("forward saving x_lora_a without LoRA", "x_lora_a",
            () -> forward(x, weight, groupEnd, null, y, floats(ROWS, RANK))));
  }

  private static List<BadCall> backwardCalls() {
    Gradients allGradients =
        new Gradients(floats(ROWS, IN), floats(EXPERTS, RANK, IN), floats(EXPERTS, OUT, RANK));
    return List.of(
        new BadCall("backward without grad_y", "grad_y", () -> backward(x, lora, null, allGradients)),
        new BadCall("backward with grad_y of the wrong shape", "grad_y",
            () -> backward(x, lora, floats(ROWS, OUT - 1), allGradients)),
        new BadCall("backward into grad_x of the wrong shape", "grad_x",
            () -> backward(x, lora, gradY, new Gradients(floats(ROWS, IN - 1), null, null))),
        new BadCall("backward into grad_lora_a of the wrong shape", "grad_lora_a",
            () -> backward(x, lora, gradY, new Gradients(null, floats(EXPERTS, RANK, IN + 1), null))),
        new BadCall("backward into grad_lora_b of another dtype than lora_b", "grad_lora_b",
            ()
                -> backward(x, lora, gradY,
                    new Gradients(null, null,
                        opened(
                            TestData.bfloat16Tensor(new float[EXPERTS * OUT * RANK], EXPERTS, OUT, RANK))))),
        new BadCall("backward asking for nothing", "grad_x",
            () -> backward(x, lora, gradY, new Gradients(null, null, null))),
        new BadCall("backward for grad_lora_a without x", "x",
            () -> backward(null, lora, gradY, new Gradients(null, allGradients.loraA(), null))),
        new BadCall("backward for a LoRA gradient without LoRA", "grad_lora_a",
            () -> backward(x, null, gradY, new Gradients(null, allGradients.loraA(), null))),
        new BadCall("backward without gradients", "gradients", () -> backward(x, lora, gradY, null)));
  }

  private static void forward(Tensor x, QTensor weight, Tensor groupEnd, Lora lora, Tensor y, Tensor xLoraA) {
    Moeq.expertGemmLora(x, weight, LAYOUT, groupEnd, lora, y, xLoraA, Moeq.DEFAULT_STREAM);
  }

  private static void backward(Tensor x, Lora lora, Tensor gradY, Gradients gradients) {
    Moeq.expertGemmLoraBackward(x, weight, LAYOUT, groupEnd, lora, gradY, gradients);
  }

  /** y is a view of the same memory as x. */
  private static void forwardIntoOverlappingY() {
    ByteBuffer shared = TestData.directBuffer(ROWS * IN * Float.BYTES);
    Tensor sharedX = opened(Tensor.of(shared, DType.FLOAT32, ROWS, IN));
    Tensor sharedY = opened(Tensor.of(shared, DType.FLOAT32, ROWS, OUT));
    forward(sharedX, weight, groupEnd, lora, sharedY, null);
  }

  private static Tensor floats(long... shape) {
    return opened(Tensor.empty(DType.FLOAT32, Device.CPU, shape));
  }

  private static QTensor quantized(long... shape) {
    try (Tensor original = floats(shape)) {
      original.copyFrom(new float[(int) original.numel()]);
      return opened(Moeq.quantize(original, Format.NF4, 64, false));
    }
  }

  private static <T extends AutoCloseable> T opened(T resource) {
    OPENED.add(resource);
    return resource;
  }
}
