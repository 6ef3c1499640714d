"""moeq.quantize and moeq.dequantize."""

from . import capi
from ._dtypes import dtype_name
from ._qtensor import QTensor, format_code
from ._streams import stream_handle
from ._tensor import Tensor, as_tensor, output_tensor


def quantize(x, format="nf4", blocksize=64, nested=False, stream=None):
    """Quantizes `x` (float32/float16/bfloat16, contiguous, on the CPU or a CUDA GPU) to a
    QTensor on the same device, bytes as bitsandbytes' quantize_4bit writes them.
    `nested` is bitsandbytes' compress_statistics (double quantization)."""
    handle = stream_handle(stream, [x])
    source = as_tensor(x, "x", handle)
    config = capi.moeq_quant_config()
    config.format = format_code(format)
    config.blocksize = blocksize
    config.nested = int(bool(nested))
    layout = capi.moeq_quantized_layout(config, source.shape)
    device = source.__dlpack_device__()
    buffers = {
        # bitsandbytes' shape for the packed codes: [(numel + 1) // 2, 1].
        "packed": Tensor.empty((layout.packed_bytes, 1), "uint8", device),
        "absmax": Tensor.empty((layout.absmax_count,), "uint8" if nested else "float32", device),
    }
    if nested:
        buffers["nested_absmax"] = Tensor.empty((layout.nested_absmax_count,), "float32", device)
        buffers["nested_code"] = Tensor.empty((layout.nested_code_count,), "float32", device)
        buffers["nested_offset"] = Tensor.empty((layout.nested_offset_count,), "float32", device)
    native = capi.moeq_qtensor()
    for name, buffer in buffers.items():
        setattr(native, name, buffer._held.dl_tensor())
        buffer._stream = handle
    capi.moeq_quantize(source._held.dl_tensor(), config, native, None, 0, handle)
    return QTensor(format=format, blocksize=blocksize, shape=source.shape, dtype=source.dtype,
                   **buffers)


def dequantize(q, dtype=None, out=None, stream=None):
    """Dequantizes QTensor `q` into `out` (any writable DLPack tensor of q.shape), or into
    a new moeq.Tensor of `dtype` (default q.dtype) on q's device. Returns `out` when given."""
    handle = stream_handle(stream, [out])
    target = output_tensor(out, "out", q.shape, dtype_name(dtype) if dtype else q.dtype,
                           q.packed.__dlpack_device__(), handle)
    native = q.native(handle)
    capi.moeq_dequantize(native, target._held.dl_tensor(), handle)
    return target if out is None else out
