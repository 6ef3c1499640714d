"""ctypes view of libmoeq's quantize/dequantize ABI (moeq.h) over torch tensors.

For the benchmarks only: the Python package (bindings/python) is the supported
interface. Argument structs are built once and reused, so a timed call costs one
foreign call.
"""
import ctypes

import torch

KDL_UINT, KDL_FLOAT, KDL_BFLOAT = 1, 2, 4
KDL_CPU, KDL_CUDA = 1, 2
MOEQ_FORMAT_NF4, MOEQ_FORMAT_FP4 = 1, 2
MOEQ_MAX_DIMS = 8


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class QuantConfig(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("format", ctypes.c_int32),
        ("blocksize", ctypes.c_int32),
        ("nested", ctypes.c_int32),
    ]


class QuantLayout(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("numel", ctypes.c_int64),
        ("packed_bytes", ctypes.c_int64),
        ("absmax_count", ctypes.c_int64),
        ("absmax_dtype", DLDataType),
        ("nested_absmax_count", ctypes.c_int64),
        ("nested_code_count", ctypes.c_int64),
        ("nested_offset_count", ctypes.c_int64),
        ("quantize_workspace_bytes", ctypes.c_int64),
    ]


class QTensor(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("format", ctypes.c_int32),
        ("blocksize", ctypes.c_int32),
        ("nested", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("shape", ctypes.c_int64 * MOEQ_MAX_DIMS),
        ("dtype", DLDataType),
        ("packed", DLTensor),
        ("absmax", DLTensor),
        ("nested_absmax", DLTensor),
        ("nested_code", DLTensor),
        ("nested_offset", DLTensor),
    ]


_DTYPES = {
    torch.float32: (KDL_FLOAT, 32),
    torch.float16: (KDL_FLOAT, 16),
    torch.bfloat16: (KDL_BFLOAT, 16),
    torch.uint8: (KDL_UINT, 8),
}


def dl_dtype(dtype):
    code, bits = _DTYPES[dtype]
    return DLDataType(code, bits, 1)


class TensorView:
    """A DLTensor over a contiguous torch tensor; keeps its shape array alive."""

    def __init__(self, tensor):
        assert tensor.is_contiguous()
        self.tensor = tensor
        self.shape = (ctypes.c_int64 * max(tensor.dim(), 1))(*tensor.shape)
        device = DLDevice(KDL_CUDA, tensor.device.index or 0) if tensor.is_cuda else DLDevice(KDL_CPU, 0)
        self.dl = DLTensor(tensor.data_ptr(), device, tensor.dim(), dl_dtype(tensor.dtype), self.shape, None, 0)


class Moeq:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        lib = self.lib
        lib.moeq_last_error.restype = ctypes.c_char_p
        lib.moeq_build_info.restype = ctypes.c_char_p
        lib.moeq_quantized_layout.argtypes = [ctypes.POINTER(QuantConfig), ctypes.c_int32,
                                              ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(QuantLayout)]
        lib.moeq_quantize.argtypes = [ctypes.POINTER(DLTensor), ctypes.POINTER(QuantConfig), ctypes.POINTER(QTensor),
                                      ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        lib.moeq_dequantize.argtypes = [ctypes.POINTER(QTensor), ctypes.POINTER(DLTensor), ctypes.c_void_p]
        for name in ("moeq_quantized_layout", "moeq_quantize", "moeq_dequantize"):
            getattr(lib, name).restype = ctypes.c_int32

    def build_info(self):
        return self.lib.moeq_build_info().decode()

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: status {status}: {self.lib.moeq_last_error().decode()}")

    def layout(self, shape, fmt, blocksize, nested):
        config = QuantConfig(ctypes.sizeof(QuantConfig), fmt, blocksize, int(nested))
        dims = (ctypes.c_int64 * len(shape))(*shape)
        layout = QuantLayout()
        layout.struct_size = ctypes.sizeof(QuantLayout)
        self.check(self.lib.moeq_quantized_layout(ctypes.byref(config), len(shape), dims, ctypes.byref(layout)),
                   "moeq_quantized_layout")
        return config, layout


class QuantizedTensor:
    """Device buffers of a moeq_qtensor (allocated, or borrowed from bitsandbytes)."""

    def __init__(self, moeq, shape, dtype, fmt=MOEQ_FORMAT_NF4, blocksize=64, nested=False, buffers=None):
        self.config, layout = moeq.layout(shape, fmt, blocksize, nested)
        cuda = dict(device="cuda")
        if buffers is None:
            buffers = dict(
                packed=torch.empty(layout.packed_bytes, dtype=torch.uint8, **cuda),
                absmax=torch.empty(layout.absmax_count, dtype=torch.uint8 if nested else torch.float32, **cuda))
            if nested:
                buffers.update(
                    nested_absmax=torch.empty(layout.nested_absmax_count, dtype=torch.float32, **cuda),
                    nested_code=torch.empty(256, dtype=torch.float32, **cuda),
                    nested_offset=torch.empty(1, dtype=torch.float32, **cuda))
        self.buffers = {name: tensor.reshape(-1).contiguous() for name, tensor in buffers.items()}
        self.views = {name: TensorView(tensor) for name, tensor in self.buffers.items()}
        self.workspace = torch.empty(max(layout.quantize_workspace_bytes, 1), dtype=torch.uint8, **cuda)
        q = QTensor()
        q.struct_size = ctypes.sizeof(QTensor)
        q.format, q.blocksize, q.nested, q.ndim = fmt, blocksize, int(nested), len(shape)
        for i, size in enumerate(shape):
            q.shape[i] = size
        q.dtype = dl_dtype(dtype)
        for name, view in self.views.items():
            setattr(q, name, view.dl)
        self.q = q


def quantize_call(moeq, x, qt):
    """A zero-argument callable that quantizes x into qt on torch's current stream."""
    view = TensorView(x)
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    args = (ctypes.byref(view.dl), ctypes.byref(qt.config), ctypes.byref(qt.q),
            ctypes.c_void_p(qt.workspace.data_ptr()), ctypes.c_size_t(qt.workspace.numel()), stream)
    function = moeq.lib.moeq_quantize

    def call():
        moeq.check(function(*args), "moeq_quantize")
    call.keep = view
    return call


def dequantize_call(moeq, qt, out):
    view = TensorView(out)
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    args = (ctypes.byref(qt.q), ctypes.byref(view.dl), stream)
    function = moeq.lib.moeq_dequantize

    def call():
        moeq.check(function(*args), "moeq_dequantize")
    call.keep = view
    return call
