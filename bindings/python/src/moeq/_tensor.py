"""moeq.Tensor, a DLPack tensor moeq holds, and taking any `__dlpack__` object as an argument."""

from . import capi
from ._dtypes import CPU, CUDA, DTYPES, code_name, device_name, dtype_name, is_cuda
from ._errors import argument_error
from ._streams import dlpack_stream, same_stream, stream_handle

_CONSUMED_VERSION = (capi.DLPACK_MAJOR, capi.DLPACK_MINOR)


class Tensor:
    """A tensor held by moeq: allocated by moeq, or taken zero-copy from a producer (kept
    alive as long as this object is). Hand it to any framework without a copy:
    ``np.from_dlpack(t)``, ``torch.from_dlpack(t)``, ``jax.dlpack.from_dlpack(t)``,
    ``cupy.from_dlpack(t)``. NumPy has no bfloat16 DLPack type: take such a tensor as
    ``np.from_dlpack(t.view("uint16")).view(ml_dtypes.bfloat16)``."""

    __slots__ = ("_held", "_stream", "_dl_device", "data_ptr", "shape", "strides", "dtype",
                 "__weakref__")

    def __init__(self, held, stream=None):
        self._held = held
        # The CUDA stream on which the contents are (or will be) ready; None for none.
        self._stream = stream
        self.data_ptr, self.shape, self.strides, code, self._dl_device = held.describe()
        self.dtype = code_name(code)

    @classmethod
    def empty(cls, shape, dtype, device):
        """An uninitialised contiguous tensor allocated by moeq on `device` (a DLPack
        (device_type, device_id) tuple; host memory of any kind means the CPU)."""
        dl_device = (CUDA, device[1]) if is_cuda(device) else (CPU, 0)
        return cls(capi.moeq_tensor_empty(list(shape), DTYPES[dtype], dl_device))

    @property
    def device(self):
        """"cpu" or "cuda:<id>"."""
        return device_name(self._dl_device)

    @property
    def read_only(self):
        """Whether the producer marked the memory read-only; moeq never writes to it."""
        return bool(self._held.read_only())

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"moeq.Tensor(shape={self.shape}, dtype={self.dtype}, device={self.device})"

    def __dlpack_device__(self):
        return self._dl_device

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        wants_other_device = dl_device is not None and tuple(dl_device) != self._dl_device
        if copy or wants_other_device:
            if copy is False:
                raise BufferError(f"moeq.Tensor on {self.device} cannot be exported to DLPack "
                                  f"device {tuple(dl_device)} without a copy")
            return self._copy_to(dl_device or self._dl_device).__dlpack__(max_version=max_version)
        if stream is not None and stream != -1:
            self.order_before(stream)
        versioned = max_version is not None and max_version[0] >= 1
        return self._held.capsule(self, versioned)

    def view(self, dtype):
        """This tensor's memory seen as another dtype of the same element size."""
        name = dtype_name(dtype)
        if DTYPES[name][1:] != DTYPES[self.dtype][1:]:
            raise argument_error(f"dtype: expected a dtype of {self.dtype}'s size, got {name}")
        held = capi.import_capsule(self._held.capsule(self, True))
        held.set_dtype(DTYPES[name])
        return Tensor(held, self._stream)

    def order_before(self, stream):
        """Makes work later queued on CUDA `stream` wait until the contents are ready."""
        if is_cuda(self._dl_device) and self._stream is not None \
                and not same_stream(stream, self._stream):
            capi.stream_wait(stream, self._stream, self._dl_device[1])

    def _copy_to(self, dl_device):
        copied = Tensor.empty(self.shape, self.dtype, dl_device)
        if self._stream is not None:
            self.order_before(0)  # the copy runs on the legacy default stream
        copied._held.copy_from(self._held)
        return copied


def output_tensor(given, argument, shape, dtype, device, stream):
    """The caller's tensor for an output (writable, taken as `argument`), or a new moeq.Tensor
    of `shape` and `dtype` on `device` whose contents are ready after `stream`'s work."""
    if given is not None:
        return as_tensor(given, argument, stream, writable=True)
    tensor = Tensor.empty(shape, dtype, device)
    tensor._stream = stream
    return tensor


def from_dlpack(value, stream=None):
    """A moeq.Tensor viewing `value` (anything with `__dlpack__`) zero-copy."""
    return as_tensor(value, "value", stream_handle(stream, [value]))


def as_tensor(value, argument, stream, writable=False):
    """Takes `value` (a moeq.Tensor, anything with `__dlpack__`, or a DLPack capsule) as
    argument `argument` of a call that runs on CUDA stream `stream`, without copying.
    Outputs (`writable`) must not be read-only."""
    if isinstance(value, Tensor):
        tensor = value
        tensor.order_before(stream)
    else:
        # NumPy exports no bfloat16 (ml_dtypes) through DLPack: take its bits as uint16.
        numpy_bfloat16 = type(value).__module__ == "numpy" and value.dtype.name == "bfloat16"
        held = capi.import_capsule(_capsule_of(value.view("uint16") if numpy_bfloat16 else value,
                                               argument, stream, writable))
        if numpy_bfloat16:
            held.set_dtype(DTYPES["bfloat16"])
        tensor = Tensor(held)
        if is_cuda(tensor._dl_device):
            tensor._stream = stream
    if writable and tensor.read_only:
        raise argument_error(f"{argument}: expected a writable tensor, got a read-only one")
    return tensor


def _capsule_of(value, argument, stream, writable):
    if type(value).__name__ == "PyCapsule":
        return value
    if not hasattr(value, "__dlpack__"):
        raise argument_error(f"{argument}: expected a tensor with __dlpack__ (NumPy, PyTorch, "
                             f"JAX, CuPy), got {type(value).__name__}")
    device = value.__dlpack_device__() if hasattr(value, "__dlpack_device__") else (CPU, 0)
    producer_stream = dlpack_stream(stream) if is_cuda(device) else None
    try:
        try:
            return value.__dlpack__(stream=producer_stream, max_version=_CONSUMED_VERSION,
                                    copy=False if writable else None)
        except TypeError:  # a producer older than the DLPack 1.0 Python API
            return value.__dlpack__(stream=producer_stream)
    except (BufferError, RuntimeError, ValueError) as error:
        raise argument_error(f"{argument}: could not be taken through DLPack: {error}") from error
