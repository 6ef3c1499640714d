"""moeq.swiglu / moeq.swiglu_backward through the Python API, against NumPy in float64."""

import numpy as np
import pytest

import moeq
from conftest import NUMPY_DTYPES, random_array, to_numpy

DTYPES = ["float32", "float16", "bfloat16"]
TOLERANCE = {"float32": 1e-5, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -8}
GPT_OSS = {"layout": "interleaved", "alpha": 1.702, "limit": 7.0, "up_offset": 1.0}


def split(gate_up, layout):
    if layout == "interleaved":
        return gate_up[:, 0::2], gate_up[:, 1::2]
    half = gate_up.shape[1] // 2
    return gate_up[:, :half], gate_up[:, half:]


def numpy_swiglu(gate_up, layout="halves", alpha=1.0, limit=None, up_offset=0.0):
    gate, up = split(gate_up.astype(np.float64), layout)
    limit = np.inf if limit is None else limit
    g, u = np.minimum(gate, limit), np.clip(up, -limit, limit)
    return (u + up_offset) * g / (1.0 + np.exp(-alpha * g))


def numpy_swiglu_backward(gate_up, grad, layout="halves", alpha=1.0, limit=None, up_offset=0.0):
    gate, up = split(gate_up.astype(np.float64), layout)
    grad = grad.astype(np.float64)
    limit = np.inf if limit is None else limit
    g, u = np.minimum(gate, limit), np.clip(up, -limit, limit)
    s = 1.0 / (1.0 + np.exp(-alpha * g))
    grad_gate = np.where(gate > limit, 0.0, grad * (u + up_offset) * (s + alpha * g * s * (1 - s)))
    grad_up = np.where(np.abs(up) > limit, 0.0, grad * g * s)
    result = np.empty(gate_up.shape)
    target_gate, target_up = split(result, layout)
    target_gate[...], target_up[...] = grad_gate, grad_up
    return result


def assert_close(actual, expected, dtype):
    actual = np.asarray(actual, dtype=np.float64)
    bound = TOLERANCE[dtype] * np.abs(expected) + 1e-6
    assert np.all(np.abs(actual - expected) <= bound), np.max(np.abs(actual - expected) - bound)


@pytest.mark.parametrize("params", [{}, GPT_OSS], ids=["swiglu", "gpt-oss"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_and_backward_match_numpy(dtype, params):
    gate_up = random_array((9, 2 * 40), dtype, seed=1) * 4
    grad = random_array((9, 40), dtype, seed=2)
    gate_up, grad = gate_up.astype(NUMPY_DTYPES[dtype]), grad.astype(NUMPY_DTYPES[dtype])
    out = to_numpy(moeq.swiglu(gate_up, **params))
    assert out.dtype == NUMPY_DTYPES[dtype] and out.shape == (9, 40)
    assert_close(out, numpy_swiglu(gate_up, **params), dtype)
    grad_gate_up = to_numpy(moeq.swiglu_backward(gate_up, grad, **params))
    assert grad_gate_up.shape == gate_up.shape
    assert_close(grad_gate_up, numpy_swiglu_backward(gate_up, grad, **params), dtype)


def test_out_is_written_in_place_and_returned():
    gate_up = random_array((4, 16), "float32", seed=3)
    out = np.full((4, 8), np.nan, dtype=np.float32)
    assert moeq.swiglu(gate_up, out=out) is out
    assert_close(out, numpy_swiglu(gate_up), "float32")


def test_bad_arguments_raise_argument_errors_naming_them():
    gate_up = random_array((4, 16), "float32", seed=4)
    with pytest.raises(moeq.ArgumentError, match="^gate_up:"):
        moeq.swiglu(random_array((4, 15), "float32"))
    with pytest.raises(moeq.ArgumentError, match="^out:"):
        moeq.swiglu(gate_up, out=np.empty((4, 9), dtype=np.float32))
    with pytest.raises(moeq.ArgumentError, match="^layout:"):
        moeq.swiglu(gate_up, layout="diagonal")
    with pytest.raises(moeq.ArgumentError, match="^config.limit:"):
        moeq.swiglu(gate_up, limit=0.0)
    with pytest.raises(moeq.ArgumentError, match="^grad_out:"):
        moeq.swiglu_backward(gate_up, random_array((3, 8), "float32"))
