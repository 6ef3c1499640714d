// The moeq operations: quantize, dequantize, the expert GEMM with LoRA forward and
// backward, and what the loaded library is.
package org.moeq;

import org.moeq.jni.Abi;
import org.moeq.jni.ExpertGemmCommonArgs;
import org.moeq.jni.moeq_expert_gemm_args;
import org.moeq.jni.moeq_expert_gemm_grad_args;
import org.moeq.jni.moeq_quant_config;
import org.moeq.jni.moeq_swiglu_config;

/**
 * Static entry points over the C ABI ({@code include/moeq/moeq.h}). Every failure throws a
 * {@link MoeqException} naming the argument; a closed tensor throws {@link IllegalStateException}.
 * Nothing is written when a call fails. {@code stream} is a {@code cudaStream_t} address for CUDA
 * tensors ({@link #DEFAULT_STREAM}: the legacy default stream) and is ignored on the CPU. GPU
 * scratch memory comes from the library's stream-ordered allocator.
 */
public final class Moeq {
  /** The legacy default CUDA stream. */
  public static final long DEFAULT_STREAM = 0L;

  private Moeq() {}

  /** The version of the loaded library: MAJOR * 10000 + MINOR * 100 + PATCH. */
  public static long versionNumber() {
    return Abi.moeq_version();
  }

  /** Version, backends, CUDA runtime and compiled GPU architectures. */
  public static String buildInfo() {
    return Abi.moeq_build_info();
  }

  /** True when the library has its CUDA backend and sees at least one GPU. */
  public static boolean cudaAvailable() {
    return Abi.moeq_cuda_available() == 1;
  }

  /** {@link #quantize(Tensor, Format, int, boolean, long)} on the default stream. */
  public static QTensor quantize(Tensor input, Format format, int blocksize, boolean nested) {
    return quantize(input, format, blocksize, nested, DEFAULT_STREAM);
  }

  /**
   * Quantizes a contiguous float32/float16/bfloat16 tensor of any shape into new buffers on its
   * device, as bitsandbytes does ({@code blocksize} a power of two in [32, 4096], 64 by default
   * there; {@code nested} is bitsandbytes' compress_statistics).
   */
  public static QTensor quantize(Tensor input, Format format, int blocksize, boolean nested, long stream) {
    if (format == null) {
      throw MoeqException.invalidArgument("format", "expected a Format, got null");
    }
    try (CallScope call = new CallScope(); moeq_quant_config config = new moeq_quant_config()) {
      if (call.tensor(input, "input") == null) {
        throw MoeqException.invalidArgument("input", "expected a tensor, got null");
      }
      config.setFormat(format.code);
      config.setBlocksize(blocksize);
      config.setNested(nested ? 1 : 0);
      QTensor out = QTensor.allocate(config, format, input.dtype(), input.shape(), input.device());
      try {
        MoeqException.check(Abi.moeq_quantize(input.view, config, call.qtensor(out, "out"), 0L, 0L, stream));
        return out;
      } catch (RuntimeException e) {
        out.close();
        throw e;
      }
    }
  }

  /** A new tensor, on {@code q}'s device, of its logical dtype and shape. */
  public static Tensor dequantize(QTensor q) {
    Tensor out;
    try (CallScope call = new CallScope()) {
      if (call.qtensor(q, "q") == null) {
        throw MoeqException.invalidArgument("q", "expected a quantized tensor, got null");
      }
      out = Tensor.empty(q.dtype(), q.device(), q.shape());
    }
    try {
      dequantize(q, out);
      return out;
    } catch (RuntimeException e) {
      out.close();
      throw e;
    }
  }

  /** {@link #dequantize(QTensor, Tensor, long)} on the default stream. */
  public static void dequantize(QTensor q, Tensor out) {
    dequantize(q, out, DEFAULT_STREAM);
  }

  /** Dequantizes into {@code out} (float32/float16/bfloat16, contiguous, {@code q}'s shape). */
  public static void dequantize(QTensor q, Tensor out, long stream) {
    try (CallScope call = new CallScope()) {
      MoeqException.check(Abi.moeq_dequantize(call.qtensor(q, "q"), call.output(out, "out"), stream));
    }
  }

  /**
   * {@link #expertGemmLora(Tensor, QTensor, WeightLayout, Tensor, Lora, Tensor, Tensor, long)}
   *  without the saved {@code x·Aᵀ}, on the default stream.
   */
  public static void expertGemmLora(
      Tensor x, QTensor weight, WeightLayout layout, Tensor groupEnd, Lora lora, Tensor y) {
    expertGemmLora(x, weight, layout, groupEnd, lora, y, null, DEFAULT_STREAM);
  }

  /**
   * For every expert e owning rows {@code [groupEnd[e-1], groupEnd[e])} of {@code x}:
   * {@code y_e = x_e·W_eᵀ + s·(x_e·A_eᵀ)·B_eᵀ}.
   *
   * @param x {@code [M, K]} float32/float16/bfloat16, rows grouped by expert
   * @param weight 4-bit, {@code [E, N, K]} or {@code [E, K, N]} as {@code layout} says
   * @param groupEnd {@code [E]} int32 or int64, cumulative end rows (torch._grouped_mm's offs)
   * @param lora the adapter, or null for none
   * @param y {@code [M, N]}, x's dtype; rows past the last group end are left untouched
   * @param xLoraA optional output {@code [M, r]}: {@code x·Aᵀ}, which the backward can reuse
   */
  public static void expertGemmLora(Tensor x, QTensor weight, WeightLayout layout, Tensor groupEnd, Lora lora,
      Tensor y, Tensor xLoraA, long stream) {
    try (CallScope call = new CallScope(); moeq_expert_gemm_args args = new moeq_expert_gemm_args()) {
      setCommonArgs(call, args, x, weight, layout, groupEnd, lora);
      args.setY(call.output(y, "y"));
      args.setX_lora_a(call.output(xLoraA, "x_lora_a"));
      MoeqException.check(Abi.moeq_expert_gemm_lora(args, stream));
    }
  }

  /**
   * {@link #expertGemmLoraBackward(Tensor, QTensor, WeightLayout, Tensor, Lora, Tensor, Tensor,
   *  Gradients, long)} without a saved {@code x·Aᵀ}, on the default stream.
   */
  public static void expertGemmLoraBackward(Tensor x, QTensor weight, WeightLayout layout, Tensor groupEnd,
      Lora lora, Tensor gradY, Gradients gradients) {
    expertGemmLoraBackward(x, weight, layout, groupEnd, lora, gradY, null, gradients, DEFAULT_STREAM);
  }

  /**
   * The backward of {@link #expertGemmLora}, for every expert e:
   * {@code dX_e = dY_e·W_e + s·(dY_e·B_e)·A_e}, {@code dA_e = s·(dY_e·B_e)ᵀ·x_e},
   * {@code dB_e = s·dY_eᵀ·(x_e·A_eᵀ)}. Experts without rows get zero LoRA gradients.
   *
   * @param x {@code [M, K]}; needed for {@code dA}, and for {@code dB} unless {@code xLoraA} is given
   * @param gradY {@code [M, N]}, x's dtype
   * @param xLoraA optional {@code [M, r]} saved by the forward
   * @param gradients where to write; at least one component non-null
   */
  public static void expertGemmLoraBackward(Tensor x, QTensor weight, WeightLayout layout, Tensor groupEnd,
      Lora lora, Tensor gradY, Tensor xLoraA, Gradients gradients, long stream) {
    if (gradients == null) {
      throw MoeqException.invalidArgument("gradients", "expected a Gradients record, got null");
    }
    try (CallScope call = new CallScope();
         moeq_expert_gemm_grad_args args = new moeq_expert_gemm_grad_args()) {
      setCommonArgs(call, args, x, weight, layout, groupEnd, lora);
      args.setGrad_y(call.tensor(gradY, "grad_y"));
      args.setX_lora_a(call.tensor(xLoraA, "x_lora_a"));
      args.setGrad_x(call.output(gradients.x(), "grad_x"));
      args.setGrad_lora_a(call.output(gradients.loraA(), "grad_lora_a"));
      args.setGrad_lora_b(call.output(gradients.loraB(), "grad_lora_b"));
      MoeqException.check(Abi.moeq_expert_gemm_lora_backward(args, stream));
    }
  }

  /** {@link #swiglu(SwigluConfig, Tensor, Tensor, long)} on the default stream. */
  public static void swiglu(SwigluConfig config, Tensor gateUp, Tensor out) {
    swiglu(config, gateUp, out, DEFAULT_STREAM);
  }

  /**
   * The gated activation between the projections, in one pass: {@code out [M, I]} from {@code gateUp
   * [M, 2I]} (one dtype, float32/float16/bfloat16; rows may be padded), computed in float32.
   */
  public static void swiglu(SwigluConfig config, Tensor gateUp, Tensor out, long stream) {
    try (CallScope call = new CallScope(); moeq_swiglu_config raw = rawConfig(config)) {
      MoeqException.check(Abi.moeq_swiglu(raw, call.tensor(gateUp, "gate_up"), call.output(out, "out"), stream));
    }
  }

  /** {@link #swigluBackward(SwigluConfig, Tensor, Tensor, Tensor, long)} on the default stream. */
  public static void swigluBackward(SwigluConfig config, Tensor gateUp, Tensor gradOut, Tensor gradGateUp) {
    swigluBackward(config, gateUp, gradOut, gradGateUp, DEFAULT_STREAM);
  }

  /** The gradient at {@code gateUp} given {@code gradOut [M, I]}, into {@code gradGateUp [M, 2I]}. */
  public static void swigluBackward(SwigluConfig config, Tensor gateUp, Tensor gradOut, Tensor gradGateUp,
      long stream) {
    try (CallScope call = new CallScope(); moeq_swiglu_config raw = rawConfig(config)) {
      MoeqException.check(Abi.moeq_swiglu_backward(raw, call.tensor(gateUp, "gate_up"),
          call.tensor(gradOut, "grad_out"), call.output(gradGateUp, "grad_gate_up"), stream));
    }
  }

  private static moeq_swiglu_config rawConfig(SwigluConfig config) {
    if (config == null || config.layout() == null) {
      throw MoeqException.invalidArgument("config", "expected a SwigluConfig with a GateLayout, got null");
    }
    moeq_swiglu_config raw = new moeq_swiglu_config();
    raw.setLayout(config.layout().code);
    raw.setAlpha(config.alpha());
    raw.setLimit(config.limit());
    raw.setUp_offset(config.upOffset());
    return raw;
  }

  private static void setCommonArgs(CallScope call, ExpertGemmCommonArgs args, Tensor x, QTensor weight,
      WeightLayout layout, Tensor groupEnd, Lora lora) {
    if (layout == null) {
      throw MoeqException.invalidArgument("weight_layout", "expected a WeightLayout, got null");
    }
    args.setX(call.tensor(x, "x"));
    args.setWeight(call.qtensor(weight, "weight"));
    args.setWeight_layout(layout.code);
    args.setGroup_end(call.tensor(groupEnd, "group_end"));
    if (lora != null) {
      args.setLora_a(call.tensor(lora.a(), "lora_a"));
      args.setLora_b(call.tensor(lora.b(), "lora_b"));
      args.setLora_scale(lora.scale());
    }
  }
}
