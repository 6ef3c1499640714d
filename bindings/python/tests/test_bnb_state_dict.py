"""QTensor <-> bitsandbytes state-dict entries (FORMAT.md's keys), and Params4bit when installed."""

import json

import numpy as np
import pytest

import moeq
from conftest import load_golden_case, random_array, to_numpy


def bnb_entries(manifest, arrays, prefix="weight"):
    """The state-dict entries bitsandbytes writes for a golden case, as NumPy arrays."""
    metadata = {"quant_type": manifest["quant_type"], "blocksize": manifest["blocksize"],
                "dtype": manifest["dtype"], "shape": manifest["shape"]}
    entries = {prefix: arrays["packed"].reshape(-1, 1), f"{prefix}.absmax": arrays["absmax"],
               f"{prefix}.quant_map": arrays["quant_map"]}
    if manifest["nested"]:
        metadata.update(nested_blocksize=256, nested_dtype="float32",
                        nested_offset=manifest["nested_offset"])
        entries[f"{prefix}.nested_absmax"] = arrays["nested_absmax"]
        entries[f"{prefix}.nested_quant_map"] = arrays["nested_quant_map"]
    text = json.dumps(metadata).encode()
    entries[f"{prefix}.quant_state.bitsandbytes__{manifest['quant_type']}"] = \
        np.frombuffer(text, dtype=np.uint8)
    return entries


@pytest.mark.parametrize("name", ["nf4_bfloat16_bs64_nested_s1", "fp4_float16_bs128_plain_s2"])
def test_bitsandbytes_entries_dequantize_bit_exactly(golden_dir, name):
    manifest, arrays = load_golden_case(golden_dir, name)
    entries = bnb_entries(manifest, arrays, prefix="experts.gate_up_proj")
    q = moeq.QTensor.from_bnb_state_dict(entries, prefix="experts.gate_up_proj")
    assert (q.format, q.blocksize, q.shape, q.dtype, q.nested) == (
        manifest["quant_type"], manifest["blocksize"], tuple(manifest["shape"]),
        manifest["dtype"], manifest["nested"])
    assert q.packed.data_ptr == entries["experts.gate_up_proj"].ctypes.data
    assert to_numpy(moeq.dequantize(q)).tobytes() == arrays["dequantized"].tobytes()


@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
def test_state_dict_entries_carry_bitsandbytes_keys_and_metadata(nested):
    q = moeq.quantize(random_array((4, 256), "bfloat16"), format="fp4", blocksize=128, nested=nested)
    entries = q.to_bnb_state_dict(prefix="w")
    expected_keys = {"w", "w.absmax", "w.quant_map", "w.quant_state.bitsandbytes__fp4"}
    if nested:
        expected_keys |= {"w.nested_absmax", "w.nested_quant_map"}
    assert set(entries) == expected_keys
    metadata = json.loads(to_numpy(entries["w.quant_state.bitsandbytes__fp4"]).tobytes())
    assert metadata["quant_type"] == "fp4" and metadata["blocksize"] == 128
    assert metadata["dtype"] == "bfloat16" and metadata["shape"] == [4, 256]
    if nested:
        assert metadata["nested_blocksize"] == 256 and metadata["nested_dtype"] == "float32"
        assert np.float32(metadata["nested_offset"]) == to_numpy(q.nested_offset)[0]
    assert entries["w"].shape == (512, 1) and entries["w"].data_ptr == q.packed.data_ptr


@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
def test_state_dict_round_trip_keeps_the_tensor(nested):
    q = moeq.quantize(random_array((8, 64), "float16"), nested=nested)
    back = moeq.QTensor.from_bnb_state_dict(q.to_bnb_state_dict())
    assert (back.format, back.blocksize, back.shape, back.dtype, back.nested) == \
        (q.format, q.blocksize, q.shape, q.dtype, q.nested)
    assert back.packed.data_ptr == q.packed.data_ptr
    assert to_numpy(moeq.dequantize(back)).tobytes() == to_numpy(moeq.dequantize(q)).tobytes()


def test_params4bit_converts_without_a_copy():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")
    device = "cuda" if torch.cuda.is_available() and moeq.cuda_available() else "cpu"
    weight = torch.randn(4, 128, 64, dtype=torch.bfloat16)
    param = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4",
                              compress_statistics=True).to(device)
    q = moeq.QTensor.from_bnb(param)
    assert q.packed.data_ptr == param.data_ptr() and q.nested
    reference = bnb.functional.dequantize_4bit(param.data, param.quant_state)
    restored = torch.from_dlpack(moeq.dequantize(q))
    assert torch.equal(restored, reference)
