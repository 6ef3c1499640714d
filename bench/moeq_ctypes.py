"""ctypes view of libmoeq's C ABI (include/moeq/moeq.h) over torch tensors, for the
GPU benchmarks (bench/quant.py, bench/expert_gemm.py); the supported Python
interface is bindings/python. Argument structs are built once and reused, so a
timed call costs one foreign call.
"""
import ctypes
import os

import torch

KDL_UINT, KDL_INT, KDL_FLOAT, KDL_BFLOAT = 1, 0, 2, 4
KDL_CPU, KDL_CUDA = 1, 2
MOEQ_FORMAT_NF4, MOEQ_FORMAT_FP4 = 1, 2
MOEQ_LAYOUT_EXPERT_OUT_IN, MOEQ_LAYOUT_EXPERT_IN_OUT = 0, 1
MOEQ_GATE_UP_HALVES, MOEQ_GATE_UP_INTERLEAVED = 0, 1
MOEQ_MAX_DIMS = 8
MOEQ_NESTED_CODE_SIZE = 256


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


class moeq_quant_config(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("format", ctypes.c_int32),
        ("blocksize", ctypes.c_int32),
        ("nested", ctypes.c_int32),
    ]


class moeq_quant_layout(ctypes.Structure):
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


class moeq_qtensor(ctypes.Structure):
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


_TENSOR = ctypes.POINTER(DLTensor)


def _expert_gemm_fields(*tensors):
    """The fields of moeq_expert_gemm_args / _grad_args: shared head and tail, own tensors."""
    head = [("struct_size", ctypes.c_uint32), ("x", _TENSOR), ("weight", ctypes.POINTER(moeq_qtensor)),
            ("weight_layout", ctypes.c_int32), ("group_end", _TENSOR), ("lora_a", _TENSOR),
            ("lora_b", _TENSOR), ("lora_scale", ctypes.c_float)]
    tail = [("workspace", ctypes.c_void_p), ("workspace_bytes", ctypes.c_size_t)]
    return head + [(name, _TENSOR) for name in tensors] + tail


class moeq_expert_gemm_args(ctypes.Structure):
    _fields_ = _expert_gemm_fields("y", "x_lora_a")


class moeq_expert_gemm_grad_args(ctypes.Structure):
    _fields_ = _expert_gemm_fields("grad_y", "x_lora_a", "grad_x", "grad_lora_a", "grad_lora_b")


class moeq_swiglu_config(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("layout", ctypes.c_int32),
        ("alpha", ctypes.c_float),
        ("limit", ctypes.c_float),
        ("up_offset", ctypes.c_float),
    ]


_DTYPES = {
    torch.float32: (KDL_FLOAT, 32),
    torch.float16: (KDL_FLOAT, 16),
    torch.bfloat16: (KDL_BFLOAT, 16),
    torch.uint8: (KDL_UINT, 8),
    torch.int32: (KDL_INT, 32),
    torch.int64: (KDL_INT, 64),
}


def dl_dtype(dtype):
    code, bits = _DTYPES[dtype]
    return DLDataType(code, bits, 1)


def load_library(path=None):
    """libmoeq.so from `path`, else $MOEQ_LIBRARY, with every signature the benches call."""
    lib = ctypes.CDLL(path or os.environ.get("MOEQ_LIBRARY", "libmoeq.so"))
    status = ctypes.c_int32
    signatures = {
        "moeq_build_info": (ctypes.c_char_p, []),
        "moeq_last_error": (ctypes.c_char_p, []),
        "moeq_cuda_available": (ctypes.c_int32, []),
        "moeq_quantized_layout": (status, [ctypes.POINTER(moeq_quant_config), ctypes.c_int32,
                                           ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(moeq_quant_layout)]),
        "moeq_quantize": (status, [_TENSOR, ctypes.POINTER(moeq_quant_config), ctypes.POINTER(moeq_qtensor),
                                   ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]),
        "moeq_dequantize": (status, [ctypes.POINTER(moeq_qtensor), _TENSOR, ctypes.c_void_p]),
        "moeq_expert_gemm_lora": (status, [ctypes.POINTER(moeq_expert_gemm_args), ctypes.c_void_p]),
        "moeq_expert_gemm_lora_backward": (status, [ctypes.POINTER(moeq_expert_gemm_grad_args), ctypes.c_void_p]),
        "moeq_expert_gemm_workspace_size": (status, [ctypes.POINTER(moeq_expert_gemm_args),
                                                     ctypes.POINTER(ctypes.c_size_t)]),
        "moeq_expert_gemm_grad_workspace_size": (status, [ctypes.POINTER(moeq_expert_gemm_grad_args),
                                                          ctypes.POINTER(ctypes.c_size_t)]),
        "moeq_swiglu": (status, [ctypes.POINTER(moeq_swiglu_config), _TENSOR, _TENSOR, ctypes.c_void_p]),
        "moeq_swiglu_backward": (status, [ctypes.POINTER(moeq_swiglu_config), _TENSOR, _TENSOR, _TENSOR,
                                          ctypes.c_void_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


def check(lib, status, what):
    if status != 0:
        raise RuntimeError(f"{what}: status {status}: {lib.moeq_last_error().decode()}")


class TensorView:
    """A DLTensor over a torch tensor (strides in elements); keeps its arrays alive."""

    def __init__(self, tensor):
        self.tensor = tensor
        self.shape = (ctypes.c_int64 * max(tensor.dim(), 1))(*tensor.shape)
        self.strides = (ctypes.c_int64 * max(tensor.dim(), 1))(*tensor.stride())
        device = DLDevice(KDL_CUDA, tensor.device.index or 0) if tensor.is_cuda else DLDevice(KDL_CPU, 0)
        self.dl = DLTensor(tensor.data_ptr(), device, tensor.dim(), dl_dtype(tensor.dtype), self.shape,
                           self.strides, 0)

    def pointer(self):
        return ctypes.pointer(self.dl)


def qtensor(packed, absmax, shape, dtype, fmt=MOEQ_FORMAT_NF4, blocksize=64, nested=None):
    """A moeq_qtensor over existing buffers: plain (absmax float32), or nested when
    `nested` = (nested_absmax, nested_code, nested_offset). Returns (q, views); keep
    the views alive as long as q is used."""
    buffers = {"packed": packed.reshape(-1), "absmax": absmax.reshape(-1)}
    if nested is not None:
        buffers.update(zip(("nested_absmax", "nested_code", "nested_offset"), (t.reshape(-1) for t in nested)))
    views = {name: TensorView(tensor) for name, tensor in buffers.items()}
    q = moeq_qtensor()
    q.struct_size = ctypes.sizeof(moeq_qtensor)
    q.format, q.blocksize, q.nested, q.ndim = fmt, blocksize, int(nested is not None), len(shape)
    for i, size in enumerate(shape):
        q.shape[i] = size
    q.dtype = dl_dtype(dtype)
    for name, view in views.items():
        setattr(q, name, view.dl)
    return q, views


class QuantizedTensor:
    """Device buffers sized by moeq_quantized_layout, a workspace, and their qtensor."""

    def __init__(self, lib, shape, dtype, fmt=MOEQ_FORMAT_NF4, blocksize=64, nested=False):
        self.config = moeq_quant_config(ctypes.sizeof(moeq_quant_config), fmt, blocksize, int(nested))
        layout = moeq_quant_layout()
        layout.struct_size = ctypes.sizeof(moeq_quant_layout)
        dims = (ctypes.c_int64 * len(shape))(*shape)
        check(lib, lib.moeq_quantized_layout(ctypes.byref(self.config), len(shape), dims, ctypes.byref(layout)),
              "moeq_quantized_layout")
        cuda = dict(device="cuda")
        self.packed = torch.empty(layout.packed_bytes, dtype=torch.uint8, **cuda)
        self.absmax = torch.empty(layout.absmax_count, dtype=torch.uint8 if nested else torch.float32, **cuda)
        self.nested = None
        if nested:
            self.nested = (torch.empty(layout.nested_absmax_count, dtype=torch.float32, **cuda),
                           torch.empty(MOEQ_NESTED_CODE_SIZE, dtype=torch.float32, **cuda),
                           torch.empty(1, dtype=torch.float32, **cuda))
        self.workspace = torch.empty(max(layout.quantize_workspace_bytes, 1), dtype=torch.uint8, **cuda)
        self.q, self.views = qtensor(self.packed, self.absmax, shape, dtype, fmt, blocksize, self.nested)


def _stream():
    return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


def quantize_call(lib, x, quantized):
    """A no-argument callable quantizing x into `quantized` on torch's current stream."""
    view = TensorView(x)
    args = (view.pointer(), ctypes.byref(quantized.config), ctypes.byref(quantized.q),
            quantized.workspace.data_ptr(), quantized.workspace.numel(), _stream())

    def call():
        check(lib, lib.moeq_quantize(*args), "moeq_quantize")
    call.view = view
    return call


def dequantize_call(lib, q, out):
    """A no-argument callable dequantizing moeq_qtensor q into `out` on torch's current stream."""
    view = TensorView(out)
    args = (ctypes.byref(q), view.pointer(), _stream())

    def call():
        check(lib, lib.moeq_dequantize(*args), "moeq_dequantize")
    call.view = view
    return call


def swiglu_config(layout=MOEQ_GATE_UP_HALVES, alpha=1.0, limit=float("inf"), up_offset=0.0):
    return moeq_swiglu_config(ctypes.sizeof(moeq_swiglu_config), layout, alpha, limit, up_offset)


def swiglu_call(lib, *tensors, config=None):
    """A no-argument callable on torch's current stream: moeq_swiglu over (gate_up, out), or
    moeq_swiglu_backward over (gate_up, grad_out, grad_gate_up)."""
    function = lib.moeq_swiglu if len(tensors) == 2 else lib.moeq_swiglu_backward
    config = config or swiglu_config()
    views = tuple(TensorView(tensor) for tensor in tensors)
    args = (ctypes.byref(config), *(view.pointer() for view in views), _stream())

    def call():
        check(lib, function(*args), function.__name__)
    call.keep = (config, views)
    return call
