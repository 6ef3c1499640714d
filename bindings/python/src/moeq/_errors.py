"""moeq.Error and its subclasses: a failed library call, with the library's message and status."""


class Error(RuntimeError):
    """A moeq call failed; ``status`` / ``status_name`` say how, ``message`` names the argument."""

    def __init__(self, message, status_name, status):
        super().__init__(f"{message} [{status_name}]")
        self.message = message
        self.status_name = status_name
        self.status = status


class ArgumentError(Error, ValueError):
    """An argument was wrong (MOEQ_ERR_INVALID_ARGUMENT): a shape, dtype, device, value."""


class UnsupportedError(Error, NotImplementedError):
    """Valid, but not supported by this build or path (MOEQ_ERR_UNSUPPORTED)."""


class OutOfMemoryError(Error, MemoryError):
    """An allocation the library made failed (MOEQ_ERR_OUT_OF_MEMORY)."""


_ERROR_TYPES = {
    "MOEQ_ERR_INVALID_ARGUMENT": ArgumentError,
    "MOEQ_ERR_UNSUPPORTED": UnsupportedError,
    "MOEQ_ERR_OUT_OF_MEMORY": OutOfMemoryError,
}


def error_from_status(status, status_name, message):
    """The exception for a failed status (called by the SWIG module, see swig/moeq.i)."""
    return _ERROR_TYPES.get(status_name, Error)(message, status_name, status)


def argument_error(message):
    """An ArgumentError raised by the Python layer itself, worded like the library's."""
    return ArgumentError(message, "MOEQ_ERR_INVALID_ARGUMENT", 1)
