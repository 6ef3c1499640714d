"""DLPack both ways: zero copy, versioned and legacy capsules, lifetimes, read-only tensors."""

import ctypes
import gc
import weakref

import ml_dtypes
import numpy as np
import pytest

import moeq
from conftest import random_array, to_numpy

ctypes.pythonapi.PyCapsule_GetName.restype = ctypes.c_char_p
ctypes.pythonapi.PyCapsule_GetName.argtypes = [ctypes.py_object]


def capsule_name(capsule):
    return ctypes.pythonapi.PyCapsule_GetName(capsule).decode()


class CapsuleOnly:
    """A producer that only hands over a capsule it was given (to test capsule lifetimes)."""

    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, **kwargs):
        return self.capsule

    def __dlpack_device__(self):
        return (1, 0)


def read_only_array():
    array = random_array((4, 64), "float32")
    array.flags.writeable = False
    return array


def test_arguments_are_taken_without_a_copy():
    array = random_array((4, 64), "float32")
    assert moeq.from_dlpack(array).data_ptr == array.ctypes.data


def test_results_go_to_numpy_without_a_copy():
    restored = moeq.dequantize(moeq.quantize(random_array((4, 64), "float32")))
    assert np.from_dlpack(restored).ctypes.data == restored.data_ptr


def test_out_is_written_in_place_and_returned():
    q = moeq.quantize(random_array((4, 64), "float32"))
    out = np.zeros((4, 64), dtype=np.float16)
    assert moeq.dequantize(q, out=out) is out
    assert np.array_equal(out, to_numpy(moeq.dequantize(q, dtype="float16")))


def test_a_consumer_asking_for_dlpack_1_gets_a_versioned_capsule():
    tensor = moeq.from_dlpack(random_array((3,), "float32"))
    assert capsule_name(tensor.__dlpack__(max_version=(1, 0))) == "dltensor_versioned"


def test_a_consumer_without_max_version_gets_a_legacy_capsule():
    tensor = moeq.from_dlpack(random_array((3,), "float32"))
    assert capsule_name(tensor.__dlpack__()) == "dltensor"
    legacy = np.from_dlpack(CapsuleOnly(tensor.__dlpack__()))
    assert legacy.ctypes.data == tensor.data_ptr


def test_an_exported_capsule_keeps_its_tensor_alive():
    tensor = moeq.dequantize(moeq.quantize(np.ones((2, 64), dtype=np.float32)))
    watcher = weakref.ref(tensor)
    capsule = tensor.__dlpack__(max_version=(1, 0))
    del tensor
    gc.collect()
    assert watcher() is not None
    assert np.array_equal(np.from_dlpack(CapsuleOnly(capsule)), np.ones((2, 64), np.float32))


def test_a_consumed_capsule_is_marked_used():
    array = random_array((3,), "float32")
    capsule = array.__dlpack__(max_version=(1, 0))
    moeq.from_dlpack(capsule)
    assert capsule_name(capsule) == "used_dltensor_versioned"


def test_the_producer_stays_alive_while_moeq_holds_its_tensor():
    array = random_array((4, 64), "float32")
    watcher = weakref.ref(array)
    held = moeq.from_dlpack(array)
    del array
    gc.collect()
    assert watcher() is not None
    del held
    gc.collect()
    assert watcher() is None


def test_a_read_only_input_is_read_and_never_written():
    array = read_only_array()
    before = array.copy()
    moeq.quantize(array)
    assert moeq.from_dlpack(array).read_only
    assert np.array_equal(array, before)


def test_a_read_only_out_is_an_error():
    q = moeq.quantize(random_array((4, 64), "float32"))
    with pytest.raises(moeq.ArgumentError, match="out: expected a writable tensor"):
        moeq.dequantize(q, out=read_only_array())


def test_read_only_travels_with_a_versioned_export_and_blocks_a_legacy_one():
    tensor = moeq.from_dlpack(read_only_array())
    assert not np.from_dlpack(tensor).flags.writeable
    with pytest.raises(BufferError, match="read-only"):
        tensor.__dlpack__()


def test_copy_true_gives_a_new_buffer_with_the_same_values():
    tensor = moeq.dequantize(moeq.quantize(random_array((4, 64), "float32")))
    copied = np.from_dlpack(tensor, copy=True)
    assert copied.ctypes.data != tensor.data_ptr
    assert np.array_equal(copied, np.from_dlpack(tensor))


def test_numpy_bfloat16_arrays_travel_as_their_bits():
    array = random_array((4, 64), "bfloat16")
    tensor = moeq.from_dlpack(array)
    assert tensor.dtype == "bfloat16" and tensor.data_ptr == array.ctypes.data
    out = np.zeros((4, 64), dtype=ml_dtypes.bfloat16)
    moeq.dequantize(moeq.quantize(array), out=out)
    assert np.abs(out.astype(np.float32) - array.astype(np.float32)).max() < 0.5


def test_tensor_reports_shape_dtype_and_device():
    tensor = moeq.from_dlpack(np.zeros((2, 3), dtype=np.int32))
    assert (tensor.shape, tensor.dtype, tensor.device, tensor.ndim) == ((2, 3), "int32", "cpu", 2)
    assert tensor.__dlpack_device__() == (1, 0)
