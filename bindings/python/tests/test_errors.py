"""Bad arguments raise moeq.Error subclasses whose message names the argument."""

import numpy as np
import pytest

import moeq
from conftest import random_array

X = random_array((4, 64), "float32")


@pytest.fixture
def gemm_args():
    weight = moeq.quantize(random_array((2, 64, 64), "float32"))
    return {"x": random_array((6, 64), "float32"), "weight": weight,
            "group_end": np.array([3, 6], dtype=np.int64),
            "lora_a": random_array((2, 4, 64), "float32"),
            "lora_b": random_array((2, 64, 4), "float32")}


def raises_naming(argument, call, *args, **kwargs):
    with pytest.raises(moeq.ArgumentError) as error:
        call(*args, **kwargs)
    assert error.value.message.startswith(argument), error.value.message
    assert error.value.status_name == "MOEQ_ERR_INVALID_ARGUMENT"


def test_argument_errors_are_value_errors_and_moeq_errors_are_runtime_errors():
    assert issubclass(moeq.ArgumentError, moeq.Error) and issubclass(moeq.ArgumentError, ValueError)
    assert issubclass(moeq.Error, RuntimeError)
    assert issubclass(moeq.UnsupportedError, NotImplementedError)


def test_library_errors_carry_the_library_message_and_status():
    with pytest.raises(moeq.ArgumentError) as error:
        moeq.quantize(X, blocksize=48)
    assert error.value.message == "config.blocksize: expected a power of two in [32, 4096], got 48"
    assert error.value.status == moeq.capi.MOEQ_ERR_INVALID_ARGUMENT
    assert "MOEQ_ERR_INVALID_ARGUMENT" in str(error.value)


@pytest.mark.parametrize("argument, call", [
    ("x", lambda: moeq.quantize([1.0, 2.0])),
    ("format", lambda: moeq.quantize(X, format="int4")),
    ("config.blocksize", lambda: moeq.quantize(X, blocksize=16)),
    ("input", lambda: moeq.quantize(np.ones((4, 64), dtype=np.int32))),
    ("input", lambda: moeq.quantize(X[:, ::2])),
    ("stream", lambda: moeq.quantize(X, stream="default")),
])
def test_quantize_names_the_bad_argument(argument, call):
    raises_naming(argument, call)


@pytest.mark.parametrize("argument, call", [
    ("out", lambda q: moeq.dequantize(q, out=np.zeros((4, 63), dtype=np.float32))),
    ("out", lambda q: moeq.dequantize(q, out=np.zeros((4, 64), dtype=np.int8))),
    ("dtype", lambda q: moeq.dequantize(q, dtype="float8")),
    ("q.packed", lambda q: moeq.dequantize(moeq.QTensor(
        packed=moeq.from_dlpack(np.zeros((3, 1), np.uint8)), absmax=q.absmax, format="nf4",
        blocksize=64, shape=(4, 64), dtype="float32"))),
])
def test_dequantize_names_the_bad_argument(argument, call):
    raises_naming(argument, call, moeq.quantize(X))


@pytest.mark.parametrize("argument, change", [
    ("x", {"x": random_array((6,), "float32")}),
    ("x", {"x": random_array((6, 32), "float32")}),
    ("group_end", {"group_end": np.array([3, 6], dtype=np.float32)}),
    ("group_end", {"group_end": np.array([4, 3], dtype=np.int64)}),
    ("group_end", {"group_end": np.array([3, 7], dtype=np.int32)}),
    ("lora_b", {"lora_b": None}),
    ("lora_b", {"lora_b": random_array((2, 64, 5), "float32")}),
    ("lora_a", {"lora_a": np.ones((2, 4, 64), dtype=np.float16)}),
    ("layout", {"layout": "nk"}),
    ("y", {"out": np.zeros((6, 64), dtype=np.float16)}),
    ("return_x_lora_a", {"lora_a": None, "lora_b": None, "return_x_lora_a": True}),
    ("weight", {"weight": moeq.quantize(random_array((2, 64, 96), "float32")), "layout": "in_out"}),
])
def test_expert_gemm_names_the_bad_argument(gemm_args, argument, change):
    raises_naming(argument, moeq.expert_gemm_lora, **{**gemm_args, **change})


@pytest.mark.parametrize("argument, change", [
    ("compute", {"compute": ["bias"]}),
    ("compute", {"lora_a": None, "lora_b": None, "compute": ["lora_a"]}),
    ("x", {"x": None, "compute": ["lora_a"]}),
    ("grad_y", {"grad_y": random_array((6, 63), "float32")}),
    ("grad_x", {"out": {"x": np.zeros((6, 64), dtype=np.float16)}}),
])
def test_expert_gemm_backward_names_the_bad_argument(gemm_args, argument, change):
    args = {**gemm_args, "grad_y": random_array((6, 64), "float32"), **change}
    raises_naming(argument, moeq.expert_gemm_lora_backward, **args)


def test_state_dict_without_quant_state_names_it():
    raises_naming("state", moeq.QTensor.from_bnb_state_dict, {"weight": np.zeros((2, 1), np.uint8)})


def test_qtensor_rejects_an_integer_logical_dtype():
    raises_naming("dtype", moeq.QTensor, packed=None, absmax=None, format="nf4", blocksize=64,
                  shape=(4,), dtype="int8")
