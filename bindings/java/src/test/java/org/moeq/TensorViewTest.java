// Where a tensor's data live: a view shares its buffer both ways, library memory is
// filled and read by copies, and a read-only buffer is read but never written.
package org.moeq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class TensorViewTest {
  private static final float[] VALUES = TestData.uniform(10, 256, 1.0);

  @Test
  void libraryMemoryTakesAndGivesBackValues() {
    try (Tensor tensor = Tensor.empty(DType.FLOAT32, Device.CPU, 16, 16)) {
      tensor.copyFrom(VALUES);
      assertArrayEquals(VALUES, tensor.toFloatArray());
    }
  }

  @Test
  void aViewReadsAndWritesItsBufferWithoutCopying() {
    ByteBuffer buffer = TestData.directBuffer(VALUES.length * Float.BYTES);
    try (Tensor input = Tensor.copyOf(VALUES, VALUES.length);
         QTensor q = Moeq.quantize(input, Format.NF4, 64, false);
         Tensor view = Tensor.of(buffer, DType.FLOAT32, VALUES.length)) {
      Moeq.dequantize(q, view);
      assertArrayEquals(view.toFloatArray(), ExpertGemmCase.floats(buffer));
      buffer.putFloat(0, 7.0f);
      assertEquals(7.0f, view.toFloatArray()[0]);
    }
  }

  /** A read-only mapping would fault on a write: the binding refuses before the library runs. */
  @Test
  void aReadOnlyBufferIsReadButNeverWritten() {
    ByteBuffer buffer = TestData.directBuffer(VALUES.length * Float.BYTES);
    buffer.asFloatBuffer().put(VALUES);
    try (Tensor readOnly = Tensor.of(buffer.asReadOnlyBuffer(), DType.FLOAT32, VALUES.length);
         QTensor q = Moeq.quantize(readOnly, Format.NF4, 64, false)) {
      assertTrue(readOnly.isReadOnly());
      MoeqException error = assertThrows(MoeqException.class, () -> Moeq.dequantize(q, readOnly));
      assertEquals("out: expected a writable tensor, got a view of a read-only buffer", error.detail());
      error = assertThrows(MoeqException.class, () -> readOnly.copyFrom(VALUES));
      assertTrue(error.detail().startsWith("tensor: expected a writable tensor"), error.getMessage());
      assertArrayEquals(VALUES, readOnly.toFloatArray());
    }
  }
}
