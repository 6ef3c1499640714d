// moeq through Java against the golden vectors of real bitsandbytes (CUDA, H200):
// 180 cases of NF4/FP4 x float32/float16/bfloat16 x blocksizes x plain/nested.
package org.moeq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

class GoldenVectorTest {
  @Test
  void thereAre180GoldenCases() {
    assertEquals(180, GoldenCase.names().size());
  }

  @TestFactory
  Stream<DynamicTest> dequantizingBitsandbytesBytesGivesTheirOutputBitForBit() {
    return GoldenCase.names().stream().map(name -> DynamicTest.dynamicTest(name, () -> {
      GoldenCase golden = GoldenCase.load(name);
      try (QTensor theirs = golden.qtensor(); Tensor restored = Moeq.dequantize(theirs)) {
        assertArrayEquals(golden.bytes("dequantized"), restored.toByteArray());
      }
    }));
  }

  /**
   * The binding must carry bitsandbytes' bytes. Plain absmax is a maximum, exact everywhere. Codes
   * agree but for values within a few ulps of a decision threshold (bitsandbytes scales by an
   * approximate reciprocal); inputs with special values (zeros, NaN, infinities) differ in more
   * ways, each explained and counted by tests/test_golden_vectors.cpp, so only ordinary inputs
   * have their codes compared here.
   */
  @TestFactory
  Stream<DynamicTest> quantizingGivesBitsandbytesBytesButForValuesOnThresholds() {
    return GoldenCase.names().stream().map(name -> DynamicTest.dynamicTest(name, () -> {
      GoldenCase golden = GoldenCase.load(name);
      try (Tensor input = golden.input();
           QTensor ours = Moeq.quantize(input, golden.format, golden.blocksize, golden.nested)) {
        if (!golden.nested) {
          assertArrayEquals(golden.bytes("absmax"), ours.absmax().toByteArray());
        }
        if (!golden.specialValues) {
          byte[] theirs = golden.bytes("packed");
          byte[] mine = ours.packed().toByteArray();
          assertEquals(theirs.length, mine.length);
          int differing = 0;
          for (int i = 0; i < theirs.length; ++i) {
            int difference = theirs[i] ^ mine[i];
            differing += ((difference & 0xF0) != 0 ? 1 : 0) + ((difference & 0x0F) != 0 ? 1 : 0);
          }
          int nibbles = 2 * theirs.length;
          assertTrue(differing <= nibbles / 500, differing + " of " + nibbles + " codes differ");
        }
      }
    }));
  }
}
