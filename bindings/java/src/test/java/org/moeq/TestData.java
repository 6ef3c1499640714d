// Deterministic test inputs and bfloat16 conversions for the JUnit tests.
package org.moeq;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.ShortBuffer;
import java.util.SplittableRandom;

final class TestData {
  private TestData() {}

  /** {@code count} values uniform in [-scale, scale), the same for the same seed. */
  static float[] uniform(long seed, int count, double scale) {
    SplittableRandom random = new SplittableRandom(seed);
    float[] values = new float[count];
    for (int i = 0; i < count; ++i) {
      values[i] = (float) (scale * (2 * random.nextDouble() - 1));
    }
    return values;
  }

  static ByteBuffer directBuffer(int bytes) {
    return ByteBuffer.allocateDirect(bytes).order(ByteOrder.nativeOrder());
  }

  /** float32 to bfloat16, rounding to nearest even (values here are finite). */
  static short toBfloat16(float value) {
    int bits = Float.floatToRawIntBits(value);
    return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
  }

  static float fromBfloat16(short bits) {
    return Float.intBitsToFloat((bits & 0xFFFF) << 16);
  }

  /** {@code values} rounded to bfloat16, as float32. */
  static float[] roundedToBfloat16(float[] values) {
    float[] rounded = new float[values.length];
    for (int i = 0; i < values.length; ++i) {
      rounded[i] = fromBfloat16(toBfloat16(values[i]));
    }
    return rounded;
  }

  /** A CPU bfloat16 tensor of {@code values} (rounded). */
  static Tensor bfloat16Tensor(float[] values, long... shape) {
    ByteBuffer buffer = directBuffer(values.length * 2);
    ShortBuffer shorts = buffer.asShortBuffer();
    for (float value : values) {
      shorts.put(toBfloat16(value));
    }
    return Tensor.of(buffer, DType.BFLOAT16, shape);
  }

  /** The elements of a contiguous CPU bfloat16 tensor, as float32. */
  static float[] bfloat16Values(Tensor tensor) {
    ShortBuffer shorts = ByteBuffer.wrap(tensor.toByteArray()).order(ByteOrder.nativeOrder()).asShortBuffer();
    float[] values = new float[shorts.remaining()];
    for (int i = 0; i < values.length; ++i) {
      values[i] = fromBfloat16(shorts.get(i));
    }
    return values;
  }
}
