#!/usr/bin/env python3
"""Writes the seed corpora of the fuzzers (corpus/fuzz_c_api, corpus/fuzz_safetensors):
valid calls of every C API entry point, encoded the way fuzz_c_api.cpp decodes its
input, and small valid safetensors files, plain and bitsandbytes 4-bit."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def below(value):
    """What FuzzInput::below reads as `value` (two bytes, little-endian)."""
    return bytes([value & 255, value >> 8])


def chance(taken):
    return below(0 if taken else 1)


SMALL_SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 16, 31, 32, 33, 63, 64, 65, 96, 128, 256]


def size_value(size):
    return bytes([SMALL_SIZES.index(size)])


def quantize_like(op, nf4, blocksize_log, nested, shape, dtype):
    """quantize (op 1) and dequantize (op 2): no mutation."""
    data = below(op) + chance(nf4) + below(blocksize_log) + chance(nested) + below(len(shape) - 1)
    data += b"".join(below(size) for size in shape) + below(dtype) + below(0)
    return data


def gemm(op, nf4, nested, layout, experts, last_blocks, other, rank_index, rows, dtype, lora_f32,
         padded_x, int64_ends, ends, peft, optional_outputs):
    data = below(op) + chance(nf4) + below(0) + chance(nested) + below(layout) + below(experts - 1)
    data += below(last_blocks - 1) + below(other - 1) + below(rank_index) + below(rows) + below(dtype)
    data += chance(lora_f32) + chance(padded_x) + chance(int64_ends)
    data += b"".join(below(step) for step in ends) + chance(peft) + chance(True)
    if rank_index > 0:
        data += chance(optional_outputs)  # x_lora_a
        data += chance(True) + chance(True) + chance(True)  # grad_x, grad_lora_a, grad_lora_b
    return data + below(0)


def c_api_seeds():
    seeds = {}
    for nf4 in (True, False):
        for nested in (False, True):
            seeds[f"layout_{nf4:d}{nested:d}"] = (below(0) + below(1 if nf4 else 2) + chance(False) + below(2)
                                                  + below(int(nested)) + chance(False) + below(3)
                                                  + size_value(4) + size_value(64) + size_value(7)
                                                  + chance(False) + chance(False) * 3)
            for dtype in range(3):
                seeds[f"quantize_{nf4:d}{nested:d}{dtype}"] = quantize_like(1, nf4, dtype, nested, [3, 47], dtype)
                seeds[f"dequantize_{nf4:d}{nested:d}{dtype}"] = quantize_like(2, nf4, 1, nested, [5, 33], dtype)
    for op in (3, 4, 5, 6):
        for layout in (0, 1):
            for rank_index in (0, 2):
                name = f"gemm{op}_{layout}{rank_index}"
                seeds[name] = gemm(op, layout == 0, rank_index == 2, layout, 3, 2, 17, rank_index, 20,
                                   layout + rank_index // 2, layout == 1, rank_index == 0, layout == 0,
                                   [5, 0, 9], layout == 1, rank_index == 2)
    for ndim, sizes in ((0, []), (2, [8, 4]), (3, [0, 5, 7])):
        data = below(7) + below(1 + len(sizes) - 1 if sizes else 0)
        data += below(2) + below([0, 1, 2, 3, 4, 8, 9, 16, 17, -1, -100].index(ndim))
        for index, size in enumerate(sizes):
            data += below(3) + size_value(size) + below(index)
        seeds[f"tensor_empty_{ndim}"] = data + chance(False)
    seeds["status_name"] = below(8) + struct.pack("<q", 5)
    for op in (9, 10):  # SwiGLU forward, backward: dtype, rows, cols, padded rows, gpt-oss form, no mutation
        for dtype, gpt_oss in ((0, False), (2, True)):
            seeds[f"swiglu{op}_{dtype}{gpt_oss:d}"] = (below(op) + below(dtype) + below(7) + below(24)
                                                       + chance(gpt_oss) + chance(gpt_oss) + below(0))
    return seeds


NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]
FP4_MAGNITUDES = [0.0, 0.0052083333, 0.6666667, 1.0, 0.33333334, 0.5, 0.16666667, 0.25]
FP4 = FP4_MAGNITUDES + [-m for m in FP4_MAGNITUDES]
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I8": 1, "I32": 4, "I64": 8, "F64": 8, "BOOL": 1}


def safetensors_file(tensors, metadata=None):
    """tensors: [(name, dtype, shape, bytes)] in data order."""
    header, data, offset = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(payload)]}
        data += payload
        offset += len(payload)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def floats(values):
    return struct.pack(f"<{len(values)}f", *values)


def bnb_tensors(base, fp4, nested, shape, blocksize):
    numel = 1
    for size in shape:
        numel *= size
    blocks = -(-numel // blocksize)
    packed = bytes((17 * i + 5) & 255 for i in range(-(-numel // 2)))
    state = {"quant_type": "fp4" if fp4 else "nf4", "blocksize": blocksize, "dtype": "bfloat16", "shape": shape}
    tensors = [(base, "U8", [len(packed), 1], packed)]
    if nested:
        state.update({"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.25})
        tensors.append((base + ".absmax", "U8", [blocks], bytes((31 * i) & 255 for i in range(blocks))))
        tensors.append((base + ".nested_absmax", "F32", [-(-blocks // 256)], floats([0.5] * -(-blocks // 256))))
        ramp = [(i - 127) / 128.0 for i in range(256)]
        tensors.append((base + ".nested_quant_map", "F32", [256], floats(ramp)))
    else:
        tensors.append((base + ".absmax", "F32", [blocks], floats([0.5 + i for i in range(blocks)])))
    tensors.append((base + ".quant_map", "F32", [16], floats(FP4 if fp4 else NF4)))
    text = json.dumps(state).encode()
    tensors.append((base + ".quant_state.bitsandbytes__" + ("fp4" if fp4 else "nf4"), "U8", [len(text)], text))
    return tensors


def safetensors_seeds():
    seeds = {"empty_header": safetensors_file([]),
             "metadata_only": safetensors_file([], {"format": "pt"})}
    for dtype, size in DTYPE_BYTES.items():
        seeds[f"one_{dtype.lower()}"] = safetensors_file([("w", dtype, [2, 3], bytes(range(6 * size)))])
    seeds["scalar_and_empty"] = safetensors_file([("s", "F32", [], floats([1.5])), ("e", "F16", [0, 4], b"")])
    seeds["three_tensors"] = safetensors_file(
        [("model.layers.0.mlp.experts.0.gate_proj.weight", "BF16", [4, 64], bytes(512)),
         ("model.norm.weight", "F32", [8], floats([1.0] * 8)),
         ("lm_head.weight", "F16", [2, 8], bytes(32))], {"format": "pt"})
    for fp4 in (False, True):
        for nested in (False, True):
            for shape, blocksize in (([4, 64], 64), ([3, 2, 32], 32), ([5, 7], 32)):
                name = f"bnb_{'fp4' if fp4 else 'nf4'}_{'nested' if nested else 'plain'}_{'x'.join(map(str, shape))}"
                seeds[name] = safetensors_file(bnb_tensors("layer.weight", fp4, nested, shape, blocksize))
    seeds["index_json"] = json.dumps({"metadata": {"total_size": 8},
                                      "weight_map": {"a": "model-00001-of-00002.safetensors",
                                                     "b": "model-00002-of-00002.safetensors"}}).encode()
    return seeds


def write(folder, seeds):
    path = os.path.join(HERE, "corpus", folder)
    os.makedirs(path, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(path, name), "wb") as file:
            file.write(data)


if __name__ == "__main__":
    write("fuzz_c_api", c_api_seeds())
    write("fuzz_safetensors", safetensors_seeds())
