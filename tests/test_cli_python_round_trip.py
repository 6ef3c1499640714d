"""The moeq Python package reads back what `moeq quantize` writes: fused 3-D and
per-expert 2-D expert weights become QTensors through their bitsandbytes keys and
dequantize within 4-bit error of the original; every other tensor is unchanged."""

import json
import os
import struct
import subprocess

import ml_dtypes
import numpy as np
import pytest

import moeq

SAFETENSORS_DTYPES = {"BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32, "U8": np.uint8}
# Half the widest step between neighbouring codes: the most a value moves when rounded.
HALF_STEP = {"nf4": (1.0 - 0.6961928009986877) / 2, "fp4": (1.0 - 8.0 / 12.0) / 2}


def write_safetensors(path, tensors):
    """A safetensors file written by hand (the format is a JSON header and raw bytes)."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    names = {value: key for key, value in SAFETENSORS_DTYPES.items()}
    for name, array in tensors.items():
        header[name] = {"dtype": names[array.dtype.type], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(text)) + text)
        for array in tensors.values():
            file.write(array.tobytes())


def read_safetensors(path):
    data = open(path, "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    start = 8 + length
    return {name: np.frombuffer(data[start + entry["data_offsets"][0]:start + entry["data_offsets"][1]],
                                dtype=SAFETENSORS_DTYPES[entry["dtype"]]).reshape(entry["shape"])
            for name, entry in header.items() if name != "__metadata__"}


def restored_absmax(state, name):
    """The absmax each block is dequantized with, rebuilt from the stored statistics (FORMAT.md)."""
    absmax = state[name + ".absmax"]
    if absmax.dtype == np.float32:
        return absmax
    quant_state = next(key for key in state if key.startswith(name + ".quant_state."))
    offset = np.float32(json.loads(state[quant_state].tobytes())["nested_offset"])
    scales = np.repeat(state[name + ".nested_absmax"], 256)[:absmax.size]
    return state[name + ".nested_quant_map"][absmax] * scales + offset


def checkpoint(layout, rng):
    """Two layers of 4 experts (H 128, I 64) in bf16, plus tensors that stay as they are."""
    def weights(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(ml_dtypes.bfloat16)
    tensors = {"model.embed_tokens.weight": weights(256, 128),
               "model.norm.weight": np.ones(128, dtype=ml_dtypes.bfloat16)}
    for layer in range(2):
        prefix = f"model.layers.{layer}.mlp."
        tensors[prefix + "gate.weight"] = weights(4, 128)
        if layout == "fused":
            tensors[prefix + "experts.gate_up_proj"] = weights(4, 128, 128)
            tensors[prefix + "experts.down_proj"] = weights(4, 128, 64)
        else:
            for expert in range(4):
                tensors[prefix + f"experts.{expert}.gate_proj.weight"] = weights(64, 128)
                tensors[prefix + f"experts.{expert}.up_proj.weight"] = weights(64, 128)
                tensors[prefix + f"experts.{expert}.down_proj.weight"] = weights(128, 64)
    return tensors


@pytest.mark.parametrize("layout", ["fused", "per-expert"])
@pytest.mark.parametrize("fmt,double_quant", [("nf4", False), ("nf4", True), ("fp4", True)])
def test_quantized_checkpoint_reads_back_into_qtensors(tmp_path, layout, fmt, double_quant):
    original = checkpoint(layout, np.random.default_rng(0))
    write_safetensors(tmp_path / "model.safetensors", original)
    command = [os.environ["MOEQ_COMMAND"], "quantize", str(tmp_path / "model.safetensors"),
               "-o", str(tmp_path / "out.safetensors"), "--format", fmt, "--quiet"]
    subprocess.run(command + (["--double-quant"] if double_quant else []), check=True)
    state = read_safetensors(tmp_path / "out.safetensors")

    experts = [name for name in original if ".experts." in name]
    assert len(experts) == (4 if layout == "fused" else 24)
    for name, values in original.items():
        if name not in experts:
            assert state[name].tobytes() == values.tobytes()
            continue
        q = moeq.QTensor.from_bnb_state_dict(state, prefix=name)
        assert (q.format, q.blocksize, q.nested, q.shape, q.dtype) == (fmt, 64, double_quant, values.shape,
                                                                       "bfloat16")
        restored = np.from_dlpack(moeq.dequantize(q, dtype="float32")).reshape(-1, 64)
        blocks = values.astype(np.float32).reshape(-1, 64)
        absmax = np.abs(blocks).max(axis=1, keepdims=True)
        # The code is within half a step of x / absmax; it is restored with absmax'.
        stored = restored_absmax(state, name).reshape(-1, 1)
        bound = HALF_STEP[fmt] * absmax + np.abs(stored - absmax) + 1e-6 * absmax
        assert np.all(np.abs(restored - blocks) <= bound), name
