// One golden case of real bitsandbytes (tests/data/bnb_golden_public.tar.gz, unpacked
// by the CMake build; its folder comes in as -Dmoeq.golden.dir): manifest and raw files.
package org.moeq;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

final class GoldenCase {
  final String name;
  final Format format;
  final DType dtype;
  final int blocksize;
  final boolean nested;
  /** Zeros, NaN, infinities, constant blocks: inputs whose codes differ for known reasons. */
  final boolean specialValues;
  final long[] shape;
  private final Path directory;
  private final String manifest;

  private GoldenCase(String name) {
    this.name = name;
    this.directory = root().resolve(name);
    this.manifest = read(directory.resolve("manifest.json"));
    this.format = Format.valueOf(stringField("quant_type").toUpperCase());
    this.dtype = DType.valueOf(stringField("dtype").toUpperCase());
    this.blocksize = Integer.parseInt(field("blocksize", "(\\d+)"));
    this.nested = Boolean.parseBoolean(field("nested", "(true|false)"));
    this.specialValues = Boolean.parseBoolean(field("special_values", "(true|false)"));
    this.shape = Arrays.stream(field("shape", "\\[([^\\]]*)\\]").split(","))
                     .mapToLong(size -> Long.parseLong(size.strip()))
                     .toArray();
  }

  static GoldenCase load(String name) {
    return new GoldenCase(name);
  }

  /** The names index.json lists. */
  static List<String> names() {
    String index = read(root().resolve("index.json"));
    Matcher list = Pattern.compile("\"cases\"\\s*:\\s*\\[([^\\]]*)\\]").matcher(index);
    if (!list.find()) {
      throw new IllegalStateException("index.json has no \"cases\" list");
    }
    List<String> names = new ArrayList<>();
    Matcher name = Pattern.compile("\"([^\"]+)\"").matcher(list.group(1));
    while (name.find()) {
      names.add(name.group(1));
    }
    return names;
  }

  /** The raw bytes of {@code <file>.bin}. */
  byte[] bytes(String file) {
    try {
      return Files.readAllBytes(directory.resolve(file + ".bin"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** A 1-D CPU tensor over the bytes of {@code <file>.bin}. */
  Tensor tensor(String file, DType elementType) {
    byte[] bytes = bytes(file);
    return Tensor.of(
        TestData.directBuffer(bytes.length).put(bytes), elementType, bytes.length / elementType.byteSize());
  }

  /** The input bitsandbytes quantized, in its logical shape and dtype. */
  Tensor input() {
    byte[] bytes = bytes("input");
    return Tensor.of(TestData.directBuffer(bytes.length).put(bytes), dtype, shape);
  }

  /** bitsandbytes' quantized bytes of this case, as moeq sees them. */
  QTensor qtensor() {
    Tensor packed = tensor("packed", DType.UINT8);
    if (!nested) {
      return QTensor.of(format, blocksize, dtype, shape, packed, tensor("absmax", DType.FLOAT32));
    }
    ByteBuffer offset =
        TestData.directBuffer(4).putInt(0, (int) Long.parseLong(field("nested_offset_f32_hex", "(\\d+)")));
    return QTensor.ofNested(format, blocksize, dtype, shape, packed, tensor("absmax", DType.UINT8),
        tensor("nested_absmax", DType.FLOAT32), tensor("nested_quant_map", DType.FLOAT32),
        Tensor.of(offset, DType.FLOAT32, 1));
  }

  private static Path root() {
    String directory = System.getProperty("moeq.golden.dir");
    if (directory == null) {
      throw new IllegalStateException("run with -Dmoeq.golden.dir=<build>/tests/golden/bnb_golden_public");
    }
    return Path.of(directory);
  }

  private static String read(Path file) {
    try {
      return Files.readString(file);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private String stringField(String key) {
    return field(key, "\"([^\"]*)\"");
  }

  /** The value of a top-level manifest key matching {@code valuePattern}'s group. */
  private String field(String key, String valuePattern) {
    Matcher matcher = Pattern.compile("\"" + key + "\"\\s*:\\s*" + valuePattern).matcher(manifest);
    if (!matcher.find()) {
      throw new IllegalStateException(name + "/manifest.json: no " + key);
    }
    return matcher.group(1);
  }
}
