"""What the C API does not report about a model, read straight from the protobuf wire format:
the names of the main graph's nodes. Weights and everything else are skipped by length, so
reading a large model costs one pass over its field headers, not a copy."""

import mmap
import os


def node_names(source):
    """The main graph's node names ("" for unnamed nodes) of a model: a path (str or
    os.PathLike) or its serialized bytes.
    Raises ValueError when the bytes are not a well-formed ModelProto, OSError for the file."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                raise ValueError("the file is empty")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                with memoryview(mapped) as data:
                    return _model(data)
    with memoryview(source) as data:
        return _model(data.cast("B"))


def _model(data):
    graph = None
    for number, value in _fields(data, 0, len(data)):
        if number == 7:
            graph = _node_names(data, _span(value))
    if graph is None:
        raise ValueError("the model has no graph")
    return graph


def _node_names(data, span):
    """Names of the GraphProto's nodes (field 1, each NodeProto's name = 3)."""
    return [next((_text(data, v) for k, v in _fields(data, *_span(value)) if k == 3), "")
            for number, value in _fields(data, *span) if number == 1]


def _fields(data, start, end):
    """(field number, value) of each field of the message in data[start:end]: an int for a
    varint, a (start, end) span for a length-delimited field, None for fixed-width ones."""
    i = start
    while i < end:
        key, i = _varint(data, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = (i, i + length), i + length
        elif wire in (1, 5):
            value, i = None, i + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > end:
            raise ValueError("truncated protobuf message")
        yield key >> 3, value


def _varint(data, i):
    result = shift = 0
    while shift < 70:
        try:
            byte = data[i]
        except IndexError:
            raise ValueError("truncated protobuf varint") from None
        result |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return result, i
        shift += 7
    raise ValueError("protobuf varint is too long")


def _span(value):
    if not isinstance(value, tuple):
        raise ValueError("a protobuf field has the wrong wire type")
    return value


def _text(data, value):
    start, end = _span(value)
    return bytes(data[start:end]).decode("utf-8", errors="replace")
