"""CUDA interop with PyTorch streams, CuPy and JAX: zero copy both ways and stream ordering.
Skipped where no GPU (or framework) is available."""

import os

import numpy as np
import pytest

import moeq
from conftest import random_array

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave GPU memory to the others

needs_gpu = pytest.mark.skipif(not moeq.cuda_available(), reason="no CUDA GPU visible to moeq")


def cpu_dequantized(source):
    return np.from_dlpack(moeq.dequantize(moeq.quantize(source)))


@needs_gpu
def test_cupy_arrays_go_in_and_out_without_a_copy():
    cupy = pytest.importorskip("cupy", reason="cupy is not installed")
    source = random_array((8, 256), "float32")
    array = cupy.asarray(source)
    assert moeq.from_dlpack(array).data_ptr == array.data.ptr
    restored = moeq.dequantize(moeq.quantize(array))
    as_cupy = cupy.from_dlpack(restored)
    assert as_cupy.data.ptr == restored.data_ptr
    np.testing.assert_array_equal(cupy.asnumpy(as_cupy), cpu_dequantized(source))


@needs_gpu
def test_cupy_current_stream_is_used_by_default():
    cupy = pytest.importorskip("cupy", reason="cupy is not installed")
    source = random_array((8, 256), "float32")
    with cupy.cuda.Stream(non_blocking=True) as stream:
        out = cupy.empty((8, 256), dtype=cupy.float32)
        moeq.dequantize(moeq.quantize(cupy.asarray(source)), out=out)
        stream.synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(out), cpu_dequantized(source))


@needs_gpu
def test_jax_arrays_go_in_and_out_through_dlpack():
    jax = pytest.importorskip("jax", reason="jax is not installed")
    gpu = [device for device in jax.devices() if device.platform == "gpu"]
    if not gpu:
        pytest.skip("jax sees no GPU")
    source = random_array((8, 256), "float32")
    array = jax.device_put(source, gpu[0])
    assert moeq.from_dlpack(array).data_ptr == array.unsafe_buffer_pointer()
    restored = moeq.dequantize(moeq.quantize(array))
    as_jax = jax.dlpack.from_dlpack(restored)
    assert as_jax.unsafe_buffer_pointer() == restored.data_ptr
    np.testing.assert_array_equal(np.asarray(as_jax), cpu_dequantized(source))


@needs_gpu
def test_torch_side_stream_work_is_ordered_before_a_consumer_on_another_stream():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    source = random_array((1024, 1024), "float32")
    q = moeq.quantize(torch.from_numpy(source).cuda())
    side = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # keep the side stream busy past the export below
        restored = moeq.dequantize(q, stream=side)
    as_torch = torch.from_dlpack(restored)  # consumer: the default stream
    assert as_torch.data_ptr() == restored.data_ptr
    np.testing.assert_array_equal(as_torch.cpu().numpy(), cpu_dequantized(source))


@needs_gpu
def test_torch_current_stream_is_used_for_torch_arguments():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    source = random_array((256, 256), "float32")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        x = torch.from_numpy(source).cuda()
        out = torch.empty_like(x)
        moeq.dequantize(moeq.quantize(x), out=out)
    side.synchronize()
    np.testing.assert_array_equal(out.cpu().numpy(), cpu_dequantized(source))
