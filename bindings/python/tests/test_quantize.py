"""quantize / dequantize through the Python API, against an independent NumPy decoding."""

import numpy as np
import pytest

import moeq
from conftest import NUMPY_DTYPES, decode_with_numpy, random_array, to_numpy

FORMATS = ["nf4", "fp4"]
DTYPES = ["float32", "float16", "bfloat16"]


@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("format", FORMATS)
def test_dequantize_equals_the_numpy_decoding_of_the_codes(format, dtype, nested):
    q = moeq.quantize(random_array((5, 128), dtype), format=format, nested=nested)
    expected = decode_with_numpy(q).astype(NUMPY_DTYPES[dtype])
    actual = to_numpy(moeq.dequantize(q))
    assert actual.dtype == expected.dtype
    assert actual.tobytes() == expected.tobytes()


@pytest.mark.parametrize("blocksize", [32, 64, 256, 4096])
@pytest.mark.parametrize("format", FORMATS)
def test_round_trip_error_stays_within_half_the_widest_code_gap(format, blocksize):
    from moeq._bnb import CODES

    source = random_array((3, 4096), "float32", seed=blocksize)
    restored = to_numpy(moeq.dequantize(moeq.quantize(source, format=format, blocksize=blocksize)))
    widest_gap = np.diff(np.sort(np.array(CODES[format]))).max()
    block_absmax = np.abs(source.reshape(-1, blocksize)).max(axis=1, keepdims=True)
    error = np.abs((restored - source).reshape(-1, blocksize))
    assert np.all(error <= block_absmax * widest_gap / 2 * (1 + 1e-6))


def test_qtensor_describes_the_quantized_tensor():
    q = moeq.quantize(random_array((2, 3, 64), "float16"), format="fp4", blocksize=32)
    assert (q.format, q.blocksize, q.shape, q.dtype, q.nested) == ("fp4", 32, (2, 3, 64), "float16", False)
    assert q.packed.shape == (192, 1) and q.packed.dtype == "uint8"
    assert q.absmax.shape == (12,) and q.absmax.dtype == "float32"
    assert q.device == "cpu"


def test_nested_quantization_stores_uint8_codes_and_second_level_statistics():
    q = moeq.quantize(random_array((600, 64), "float32"), nested=True)
    assert q.nested
    assert (q.absmax.dtype, q.absmax.shape) == ("uint8", (600,))
    assert q.nested_absmax.shape == (3,) and q.nested_code.shape == (256,)
    assert q.nested_offset.shape == (1,)


def test_odd_element_count_packs_a_zero_in_the_last_low_nibble():
    q = moeq.quantize(np.full(65, 1.0, dtype=np.float32), blocksize=64)
    assert q.packed.shape == (33, 1)
    restored = to_numpy(moeq.dequantize(q))
    assert np.array_equal(restored, np.ones(65, dtype=np.float32))


def test_dequantize_writes_the_dtype_asked_for():
    q = moeq.quantize(random_array((4, 64), "float32"))
    restored = moeq.dequantize(q, dtype="bfloat16")
    assert restored.dtype == "bfloat16"
    expected = decode_with_numpy(q).astype(NUMPY_DTYPES["bfloat16"])
    assert to_numpy(restored).tobytes() == expected.tobytes()


def test_quantize_is_deterministic():
    source = random_array((64, 64), "bfloat16")
    first, second = moeq.quantize(source, nested=True), moeq.quantize(source, nested=True)
    for name, buffer in first.buffers.items():
        assert to_numpy(buffer).tobytes() == to_numpy(second.buffers[name]).tobytes()
