// A 4-bit NF4/FP4 tensor in the bitsandbytes layout: the moeq_qtensor descriptor
// over the Tensors holding its bytes, which it owns.
package org.moeq;

import java.util.Arrays;
import java.util.function.BiConsumer;
import org.moeq.jni.Abi;
import org.moeq.jni.AbiConstants;
import org.moeq.jni.Int64Array;
import org.moeq.jni.moeq_qtensor;
import org.moeq.jni.moeq_quant_config;
import org.moeq.jni.moeq_quant_layout;

/**
 * A quantized tensor: its logical shape and dtype, and the buffers of bitsandbytes' format
 * (packed nibbles, block absmax, and for nested statistics the 8-bit absmax codes with their own
 * absmax, code table and offset). Closing it closes those buffers.
 */
public final class QTensor implements AutoCloseable {
  final moeq_qtensor struct;
  final Lifetime lifetime;
  private final Format format;
  private final int blocksize;
  private final DType dtype;
  private final long[] shape;
  private final Tensor packed;
  private final Tensor absmax;
  private final Tensor nestedAbsmax;
  private final Tensor nestedCode;
  private final Tensor nestedOffset;

  private QTensor(Format format, int blocksize, DType dtype, long[] shape, Tensor packed, Tensor absmax,
      Tensor nestedAbsmax, Tensor nestedCode, Tensor nestedOffset) {
    this.format = format;
    this.blocksize = blocksize;
    this.dtype = dtype;
    this.shape = shape.clone();
    this.packed = packed;
    this.absmax = absmax;
    this.nestedAbsmax = nestedAbsmax;
    this.nestedCode = nestedCode;
    this.nestedOffset = nestedOffset;
    moeq_qtensor descriptor = new moeq_qtensor();
    describe(descriptor);
    this.struct = descriptor;
    Tensor[] parts = {packed, absmax, nestedAbsmax, nestedCode, nestedOffset};
    this.lifetime = new Lifetime(this, "quantized tensor", () -> {
      descriptor.delete();
      for (Tensor part : parts) {
        if (part != null) {
          part.close();
        }
      }
    });
  }

  /**
   * bitsandbytes' plain statistics: {@code packed} uint8 {@code [ceil(numel/2)]} and {@code absmax}
   * float32 {@code [ceil(numel/blocksize)]}. The QTensor takes ownership of both.
   */
  public static QTensor of(
      Format format, int blocksize, DType dtype, long[] shape, Tensor packed, Tensor absmax) {
    checkDescription(format, dtype, shape);
    requirePart(packed, "packed");
    requirePart(absmax, "absmax");
    return new QTensor(format, blocksize, dtype, shape, packed, absmax, null, null, null);
  }

  /**
   * bitsandbytes' nested (double-quantized) statistics: {@code absmaxCodes} uint8 per block,
   * decoded as {@code nestedCode[code] * nestedAbsmax[block / 256] + nestedOffset[0]}
   * ({@code nestedAbsmax} float32 {@code [ceil(blocks/256)]}, {@code nestedCode} float32 [256],
   * {@code nestedOffset} float32 [1]). The QTensor takes ownership of all five buffers.
   */
  public static QTensor ofNested(Format format, int blocksize, DType dtype, long[] shape, Tensor packed,
      Tensor absmaxCodes, Tensor nestedAbsmax, Tensor nestedCode, Tensor nestedOffset) {
    checkDescription(format, dtype, shape);
    requirePart(packed, "packed");
    requirePart(absmaxCodes, "absmax");
    requirePart(nestedAbsmax, "nested_absmax");
    requirePart(nestedCode, "nested_code");
    requirePart(nestedOffset, "nested_offset");
    return new QTensor(
        format, blocksize, dtype, shape, packed, absmaxCodes, nestedAbsmax, nestedCode, nestedOffset);
  }

  /** Buffers the library allocates on {@code device} for {@code config} and a tensor of this shape. */
  static QTensor allocate(moeq_quant_config config, Format format, DType dtype, long[] shape, Device device) {
    try (Int64Array nativeShape = new Int64Array(Math.max(1, shape.length));
         moeq_quant_layout layout = new moeq_quant_layout()) {
      for (int i = 0; i < shape.length; ++i) {
        nativeShape.setitem(i, shape[i]);
      }
      MoeqException.check(Abi.moeq_quantized_layout(config, shape.length, nativeShape.cast(), layout));
      boolean nested = config.getNested() == 1;
      Tensor[] parts = new Tensor[5];
      try {
        parts[0] = Tensor.empty(DType.UINT8, device, layout.getPacked_bytes());
        parts[1] = Tensor.empty(DType.of(layout.getAbsmax_dtype()), device, layout.getAbsmax_count());
        if (nested) {
          parts[2] = Tensor.empty(DType.FLOAT32, device, layout.getNested_absmax_count());
          parts[3] = Tensor.empty(DType.FLOAT32, device, layout.getNested_code_count());
          parts[4] = Tensor.empty(DType.FLOAT32, device, layout.getNested_offset_count());
        }
      } catch (RuntimeException e) {
        Arrays.stream(parts).filter(part -> part != null).forEach(Tensor::close);
        throw e;
      }
      return new QTensor(
          format, config.getBlocksize(), dtype, shape, parts[0], parts[1], parts[2], parts[3], parts[4]);
    }
  }

  public Format format() {
    lifetime.requireOpen("quantized tensor");
    return format;
  }

  public int blocksize() {
    lifetime.requireOpen("quantized tensor");
    return blocksize;
  }

  public boolean isNested() {
    lifetime.requireOpen("quantized tensor");
    return nestedCode != null;
  }

  /** The logical dtype: what dequantize produces. */
  public DType dtype() {
    lifetime.requireOpen("quantized tensor");
    return dtype;
  }

  /** The logical shape, e.g. {@code [E, N, K]}. */
  public long[] shape() {
    lifetime.requireOpen("quantized tensor");
    return shape.clone();
  }

  public Device device() {
    return packed().device();
  }

  public Tensor packed() {
    lifetime.requireOpen("quantized tensor");
    return packed;
  }

  /** float32 absmax per block, or the uint8 codes of nested statistics. */
  public Tensor absmax() {
    lifetime.requireOpen("quantized tensor");
    return absmax;
  }

  /** Null unless nested. */
  public Tensor nestedAbsmax() {
    lifetime.requireOpen("quantized tensor");
    return nestedAbsmax;
  }

  /** Null unless nested. */
  public Tensor nestedCode() {
    lifetime.requireOpen("quantized tensor");
    return nestedCode;
  }

  /** Null unless nested. */
  public Tensor nestedOffset() {
    lifetime.requireOpen("quantized tensor");
    return nestedOffset;
  }

  public boolean isClosed() {
    return lifetime.isClosed();
  }

  /** Frees the descriptor and closes every buffer, once. */
  @Override
  public void close() {
    lifetime.close();
  }

  @Override
  public String toString() {
    return "QTensor(" + format + " blocksize " + blocksize + (nestedCode != null ? " nested " : " ") + dtype
        + " " + Arrays.toString(shape) + (isClosed() ? ", closed)" : ")");
  }

  /** Each buffer with its field name in moeq_qtensor. */
  void forEachPart(BiConsumer<Tensor, String> action) {
    action.accept(packed, "packed");
    action.accept(absmax, "absmax");
    if (nestedCode != null) {
      action.accept(nestedAbsmax, "nested_absmax");
      action.accept(nestedCode, "nested_code");
      action.accept(nestedOffset, "nested_offset");
    }
  }

  private static void checkDescription(Format format, DType dtype, long[] shape) {
    if (format == null) {
      throw MoeqException.invalidArgument("format", "expected a Format, got null");
    }
    if (dtype == null) {
      throw MoeqException.invalidArgument("dtype", "expected a DType, got null");
    }
    if (shape == null || shape.length > AbiConstants.MOEQ_MAX_DIMS) {
      throw MoeqException.invalidArgument("shape",
          "expected at most " + AbiConstants.MOEQ_MAX_DIMS + " sizes, got " + Arrays.toString(shape));
    }
  }

  private static void requirePart(Tensor part, String name) {
    if (part == null) {
      throw MoeqException.invalidArgument(name, "expected a Tensor, got null");
    }
    part.lifetime.requireOpen(name);
  }

  /** Fills the descriptor; the buffers' DLTensor views are copied, pointing at their memory. */
  private void describe(moeq_qtensor descriptor) {
    descriptor.setFormat(format.code);
    descriptor.setBlocksize(blocksize);
    descriptor.setNested(nestedCode != null ? 1 : 0);
    descriptor.setNdim(shape.length);
    Int64Array logicalShape = Int64Array.frompointer(descriptor.getShape());
    for (int i = 0; i < shape.length; ++i) {
      logicalShape.setitem(i, shape[i]);
    }
    dtype.writeTo(descriptor.getDtype());
    descriptor.setPacked(packed.view);
    descriptor.setAbsmax(absmax.view);
    if (nestedCode != null) {
      descriptor.setNested_absmax(nestedAbsmax.view);
      descriptor.setNested_code(nestedCode.view);
      descriptor.setNested_offset(nestedOffset.view);
    }
  }
}
