"""ONNX Runtime's exception classes, raised by the facade (kerf.InferenceSession,
kerf.quantization) in the situations where ONNX Runtime raises them. Each is a kerf.KerfError
(with .status and .message), so `except kerf.KerfError` keeps catching everything.

Kerf status -> class:
    IO -> NoSuchFile                   INVALID_ARGUMENT, SHAPE_MISMATCH -> InvalidArgument
    INVALID_MODEL -> InvalidProtobuf when the bytes are not a ModelProto, else InvalidGraph
    UNSUPPORTED -> NotImplemented      OUT_OF_MEMORY, INTERNAL -> RuntimeException
    CANCELLED -> Fail
Where the status cannot tell ONNX Runtime's cases apart: an op ONNX does not define is
NotImplemented (ONNX Runtime: InvalidGraph), and a SHAPE_MISMATCH inside the graph, not in a
feed, InvalidArgument (ONNX Runtime: RuntimeException). NoModel, EngineError, ModelLoaded and
EPFail are never raised; they exist so that code catching them imports."""

from contextlib import contextmanager

from ..errors import KerfError, Status


class Fail(KerfError):
    pass


class InvalidArgument(KerfError):
    pass


class NoSuchFile(KerfError):
    pass


class NoModel(KerfError):
    pass


class EngineError(KerfError):
    pass


class RuntimeException(KerfError):
    pass


class InvalidProtobuf(KerfError):
    pass


class ModelLoaded(KerfError):
    pass


class NotImplemented(KerfError):  # noqa: A001 - ONNX Runtime's name
    pass


class InvalidGraph(KerfError):
    pass


class EPFail(KerfError):
    pass


_CLASSES = {
    Status.INVALID_ARGUMENT: InvalidArgument,
    Status.IO: NoSuchFile,
    Status.INVALID_MODEL: InvalidGraph,
    Status.UNSUPPORTED: NotImplemented,
    Status.SHAPE_MISMATCH: InvalidArgument,
    Status.OUT_OF_MEMORY: RuntimeException,
    Status.CANCELLED: Fail,
    Status.INTERNAL: RuntimeException,
}


@contextmanager
def raising_ort_errors(is_protobuf=None):
    """Re-raises a plain KerfError from the block as its ONNX Runtime class (same status and
    message). is_protobuf: optional callable telling whether the model's bytes parse as a
    ModelProto, asked on INVALID_MODEL to choose InvalidProtobuf over InvalidGraph."""
    try:
        yield
    except KerfError as error:
        if type(error) is not KerfError:
            raise
        cls = _CLASSES.get(error.status, Fail)
        if cls is InvalidGraph and is_protobuf is not None and not is_protobuf():
            cls = InvalidProtobuf
        raise cls(error.status, error.message) from None
