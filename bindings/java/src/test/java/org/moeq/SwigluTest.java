// Moeq.swiglu / swigluBackward against a float64 reference written from moeq.h's
// formula, and their argument errors.
package org.moeq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class SwigluTest {
  private static final int ROWS = 6;
  private static final int COLS = 24;

  private static void assertClose(float actual, double expected, String what) {
    assertTrue(Math.abs(actual - expected) <= 1e-5 * Math.abs(expected) + 1e-6,
        what + ": got " + actual + ", float64 reference " + expected);
  }

  private static void checkForm(SwigluConfig config) {
    Random random = new Random(11);
    float[] gateUp = new float[ROWS * 2 * COLS];
    float[] grad = new float[ROWS * COLS];
    for (int i = 0; i < gateUp.length; ++i) gateUp[i] = (float) (random.nextGaussian() * 5);
    for (int i = 0; i < grad.length; ++i) grad[i] = (float) random.nextGaussian();
    try (Tensor input = Tensor.copyOf(gateUp, ROWS, 2 * COLS);
         Tensor gradOut = Tensor.copyOf(grad, ROWS, COLS);
         Tensor out = Tensor.empty(DType.FLOAT32, Device.CPU, ROWS, COLS);
         Tensor gradGateUp = Tensor.empty(DType.FLOAT32, Device.CPU, ROWS, 2 * COLS)) {
      Moeq.swiglu(config, input, out);
      Moeq.swigluBackward(config, input, gradOut, gradGateUp);
      float[] y = out.toFloatArray();
      float[] dx = gradGateUp.toFloatArray();
      double alpha = config.alpha(), limit = config.limit(), offset = config.upOffset();
      for (int m = 0; m < ROWS; ++m) {
        for (int i = 0; i < COLS; ++i) {
          boolean interleaved = config.layout() == GateLayout.INTERLEAVED;
          int gateColumn = m * 2 * COLS + (interleaved ? 2 * i : i);
          int upColumn = m * 2 * COLS + (interleaved ? 2 * i + 1 : COLS + i);
          double gate = gateUp[gateColumn], up = gateUp[upColumn], g = Math.min(gate, limit);
          double u = Math.max(-limit, Math.min(up, limit)), s = 1 / (1 + Math.exp(-alpha * g));
          double dy = grad[m * COLS + i];
          assertClose(y[m * COLS + i], (u + offset) * g * s, config + " out");
          assertClose(dx[gateColumn], gate > limit ? 0 : dy * (u + offset) * (s + alpha * g * s * (1 - s)),
              config + " grad gate");
          assertClose(dx[upColumn], Math.abs(up) > limit ? 0 : dy * g * s, config + " grad up");
        }
      }
    }
  }

  @Test
  void swigluAndGptOssFormsMatchFloat64() {
    checkForm(SwigluConfig.swiglu());
    checkForm(SwigluConfig.gptOss());
  }

  @Test
  void badArgumentsThrowNamingThem() {
    try (Tensor input = Tensor.empty(DType.FLOAT32, Device.CPU, 4, 16);
         Tensor wrong = Tensor.empty(DType.FLOAT32, Device.CPU, 4, 9);
         Tensor out = Tensor.empty(DType.FLOAT32, Device.CPU, 4, 8)) {
      MoeqException error = assertThrows(MoeqException.class, () -> Moeq.swiglu(SwigluConfig.swiglu(), input, wrong));
      assertEquals("MOEQ_ERR_INVALID_ARGUMENT", error.statusName());
      assertTrue(error.detail().startsWith("out:"), error.getMessage());
      SwigluConfig noLimit = new SwigluConfig(GateLayout.HALVES, 1.0f, 0.0f, 0.0f);
      error = assertThrows(MoeqException.class, () -> Moeq.swiglu(noLimit, input, out));
      assertTrue(error.detail().startsWith("config.limit:"), error.getMessage());
      error = assertThrows(MoeqException.class, () -> Moeq.swiglu(null, input, out));
      assertTrue(error.detail().startsWith("config:"), error.getMessage());
    }
  }
}
