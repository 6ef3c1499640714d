"""The golden vectors of real bitsandbytes (tests/data/bnb_golden_public.tar.gz) through the Python API."""

import numpy as np
import pytest

import moeq
from conftest import golden_case_names, load_golden_case, to_numpy

CASES = golden_case_names()


def golden_qtensor(manifest, arrays):
    """A QTensor over the golden arrays themselves (no copy)."""
    nested = {}
    if manifest["nested"]:
        nested = {"nested_absmax": moeq.from_dlpack(arrays["nested_absmax"]),
                  "nested_code": moeq.from_dlpack(arrays["nested_quant_map"]),
                  "nested_offset": moeq.from_dlpack(np.array([manifest["nested_offset"]], np.float32))}
    return moeq.QTensor(packed=moeq.from_dlpack(arrays["packed"]),
                        absmax=moeq.from_dlpack(arrays["absmax"]), format=manifest["quant_type"],
                        blocksize=manifest["blocksize"], shape=tuple(manifest["shape"]),
                        dtype=manifest["dtype"], **nested)


@pytest.mark.parametrize("name", CASES)
def test_dequantize_of_bitsandbytes_bytes_is_bit_exact(golden_dir, name):
    manifest, arrays = load_golden_case(golden_dir, name)
    restored = moeq.dequantize(golden_qtensor(manifest, arrays))
    assert to_numpy(restored).tobytes() == arrays["dequantized"].tobytes()


@pytest.mark.parametrize("name", [case for case in CASES if "_plain_" in case])
def test_quantize_absmax_equals_bitsandbytes_absmax(golden_dir, name):
    manifest, arrays = load_golden_case(golden_dir, name)
    q = moeq.quantize(arrays["input"], format=manifest["quant_type"], blocksize=manifest["blocksize"])
    assert to_numpy(q.absmax).tobytes() == arrays["absmax"].tobytes()


@pytest.mark.parametrize("name", [case for case in CASES if "_s0" in case])
def test_quantize_codes_equal_bitsandbytes_codes_or_their_neighbours(golden_dir, name):
    # bitsandbytes' CUDA quantizer scales by an approximate reciprocal, so values within
    # about one ulp of a threshold may land on the neighbouring code (FORMAT.md); the C++
    # golden test explains each such difference.
    from moeq._bnb import CODES

    manifest, arrays = load_golden_case(golden_dir, name)
    q = moeq.quantize(arrays["input"], format=manifest["quant_type"],
                      blocksize=manifest["blocksize"], nested=manifest["nested"])
    value_rank = np.argsort(np.argsort(CODES[manifest["quant_type"]], kind="stable"))

    def ranks(packed):
        return value_rank[np.stack([packed >> 4, packed & 15], axis=1).reshape(-1)]

    ours, theirs = ranks(to_numpy(q.packed).reshape(-1)), ranks(arrays["packed"])
    assert np.abs(ours - theirs).max() <= 1
    assert np.count_nonzero(ours != theirs) <= max(16, manifest["numel"] // 100)


@pytest.mark.parametrize("name", ["nf4_float32_bs64_nested_s0", "fp4_float32_bs64_nested_s0"])
def test_quant_maps_equal_bitsandbytes_tables(golden_dir, name):
    manifest, arrays = load_golden_case(golden_dir, name)
    q = moeq.quantize(arrays["input"], format=manifest["quant_type"], nested=True)
    entries = q.to_bnb_state_dict()
    assert to_numpy(entries["weight.quant_map"]).tobytes() == arrays["quant_map"].tobytes()
    assert to_numpy(entries["weight.nested_quant_map"]).tobytes() == arrays["nested_quant_map"].tobytes()
