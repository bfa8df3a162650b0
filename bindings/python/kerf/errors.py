"""Status codes and the exception every failing Kerf call raises."""

from enum import IntEnum


class Status(IntEnum):
    """kerf_status values from kerf.h (append-only)."""

    OK = 0
    INVALID_ARGUMENT = 1  # a NULL, out-of-range or inconsistent argument
    IO = 2  # a file could not be read or written
    INVALID_MODEL = 3  # the bytes are not a valid ONNX model
    UNSUPPORTED = 4  # a valid model uses something Kerf cannot run
    SHAPE_MISMATCH = 5  # a tensor's dtype, rank or dims do not fit
    OUT_OF_MEMORY = 6
    CANCELLED = 7  # a progress callback asked to stop
    INTERNAL = 8  # a bug in Kerf: please report it


class KerfError(Exception):
    """A Kerf call failed. `status` is a Status (a plain int for codes newer
    than this binding); `message` is the library's description."""

    def __init__(self, status, message):
        try:
            status = Status(status)
        except ValueError:
            status = int(status)
        self.status = status
        self.message = message
        name = status.name if isinstance(status, Status) else f"status {status}"
        super().__init__(f"{name}: {message}")
