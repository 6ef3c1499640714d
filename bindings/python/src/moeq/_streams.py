"""CUDA streams: which one a moeq call runs on, and how it is named to DLPack producers."""

import sys

from ._errors import argument_error

# DLPack's name for the legacy default stream; it is also cudaStreamLegacy's handle.
LEGACY_DEFAULT_STREAM = 1


def stream_handle(stream, arrays):
    """The cudaStream_t (an int) a call runs on: `stream` when given (an int, a
    torch.cuda.Stream or a cupy.cuda.Stream); else the current stream of PyTorch or CuPy
    when an argument is one of their CUDA arrays; else 0, the legacy default stream."""
    if stream is not None:
        return _handle_of(stream)
    for array in arrays:
        framework = type(array).__module__.partition(".")[0]
        if framework == "torch" and array.is_cuda:
            return sys.modules["torch"].cuda.current_stream(array.device).cuda_stream
        if framework == "cupy":
            return sys.modules["cupy"].cuda.get_current_stream().ptr
    return 0


def _handle_of(stream):
    if isinstance(stream, int):
        return stream
    for attribute in ("cuda_stream", "ptr"):  # torch.cuda.Stream, cupy.cuda.Stream
        if hasattr(stream, attribute):
            return int(getattr(stream, attribute))
    raise argument_error(
        "stream: expected an int (cudaStream_t), a torch.cuda.Stream or a cupy.cuda.Stream, "
        f"got {type(stream).__name__}")


def dlpack_stream(handle):
    """The `stream` to pass to `__dlpack__` for a CUDA tensor used on `handle`: DLPack
    reserves 0 and names the legacy default stream 1."""
    return handle or LEGACY_DEFAULT_STREAM


def same_stream(first, second):
    """Whether two handles name the same stream (0 and 1 are both the legacy default)."""
    return (first or LEGACY_DEFAULT_STREAM) == (second or LEGACY_DEFAULT_STREAM)
