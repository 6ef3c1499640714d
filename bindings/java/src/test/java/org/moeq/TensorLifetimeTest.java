// Tensors and quantized tensors free their native memory exactly once: closing twice
// is safe, any use after close throws, and a close racing with calls never crashes.
package org.moeq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

class TensorLifetimeTest {
  private static final float[] VALUES = TestData.uniform(9, 256, 1.0);

  @Test
  void closingATensorTwiceIsSafe() {
    List<Tensor> tensors =
        List.of(Tensor.copyOf(VALUES, 256), Tensor.empty(DType.FLOAT32, Device.CPU, 16, 16),
            Tensor.of(TestData.directBuffer(64), DType.UINT8, 64));
    for (Tensor tensor : tensors) {
      assertFalse(tensor.isClosed());
      tensor.close();
      tensor.close();
      assertTrue(tensor.isClosed());
    }
  }

  @Test
  void closingAQuantizedTensorTwiceIsSafeAndClosesItsBuffers() {
    try (Tensor input = Tensor.copyOf(VALUES, 256)) {
      QTensor q = Moeq.quantize(input, Format.NF4, 64, true);
      List<Tensor> buffers =
          List.of(q.packed(), q.absmax(), q.nestedAbsmax(), q.nestedCode(), q.nestedOffset());
      q.close();
      q.close();
      assertTrue(q.isClosed());
      buffers.forEach(buffer -> assertTrue(buffer.isClosed(), buffer.toString()));
    }
  }

  @Test
  void everyMethodOfAClosedTensorThrows() {
    Tensor tensor = Tensor.copyOf(VALUES, 16, 16);
    tensor.close();
    List<Executable> uses = List.of(tensor::dtype, tensor::device, tensor::shape, tensor::strides,
        tensor::numel, tensor::toByteArray, tensor::toFloatArray, () -> tensor.copyFrom(VALUES));
    for (Executable use : uses) {
      assertThrows(IllegalStateException.class, use);
    }
    assertTrue(tensor.toString().contains("closed"), tensor.toString());
  }

  @Test
  void everyMethodOfAClosedQuantizedTensorThrows() {
    QTensor q = quantized();
    q.close();
    List<Executable> uses = List.of(q::format, q::blocksize, q::isNested, q::dtype, q::shape, q::device,
        q::packed, q::absmax, q::nestedAbsmax, q::nestedCode, q::nestedOffset);
    for (Executable use : uses) {
      assertThrows(IllegalStateException.class, use);
    }
  }

  @Test
  void aClosedTensorPassedToACallThrowsNamingTheArgument() {
    Tensor input = Tensor.copyOf(VALUES, 256);
    input.close();
    IllegalStateException error =
        assertThrows(IllegalStateException.class, () -> Moeq.quantize(input, Format.NF4, 64, false));
    assertEquals("input: the tensor is closed", error.getMessage());
    try (QTensor q = quantized()) {
      Tensor out = Tensor.empty(DType.FLOAT32, Device.CPU, 256);
      out.close();
      error = assertThrows(IllegalStateException.class, () -> Moeq.dequantize(q, out));
      assertEquals("out: the tensor is closed", error.getMessage());
    }
  }

  @Test
  void aClosedQuantizedTensorPassedAsWeightThrowsNamingIt() {
    QTensor q = quantized();
    q.close();
    IllegalStateException error = assertThrows(IllegalStateException.class, () -> Moeq.dequantize(q));
    assertEquals("q: the quantized tensor is closed", error.getMessage());
  }

  @Test
  void aBufferOfAQuantizedTensorClosedOnItsOwnIsNamed() {
    try (QTensor q = quantized()) {
      q.absmax().close();
      IllegalStateException error = assertThrows(IllegalStateException.class, () -> Moeq.dequantize(q));
      assertEquals("q.absmax: the tensor is closed", error.getMessage());
    }
  }

  /** Every call either completes (on memory still alive) or finds the tensor closed. */
  @Test
  void closingWhileOtherThreadsUseTheTensorNeverCrashes() throws Exception {
    QTensor shared = quantized();
    ExecutorService threads = Executors.newFixedThreadPool(4);
    List<Future<Integer>> workers = new ArrayList<>();
    for (int t = 0; t < 4; ++t) {
      workers.add(threads.submit(() -> {
        int completed = 0;
        try (Tensor out = Tensor.empty(DType.FLOAT32, Device.CPU, 256)) {
          while (true) {
            Moeq.dequantize(shared, out);
            ++completed;
          }
        } catch (IllegalStateException closed) {
          return completed;
        }
      }));
    }
    Thread.sleep(50);
    shared.close();
    threads.shutdown();
    assertTrue(threads.awaitTermination(30, TimeUnit.SECONDS));
    for (Future<Integer> worker : workers) {
      assertTrue(worker.get() > 0, "each worker ran before the close");
    }
  }

  private static QTensor quantized() {
    try (Tensor input = Tensor.copyOf(VALUES, 256)) {
      return Moeq.quantize(input, Format.NF4, 64, true);
    }
  }
}
