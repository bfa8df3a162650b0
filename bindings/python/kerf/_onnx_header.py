"""The few ONNX ModelProto fields the C API does not report, read straight from the protobuf
wire format: metadata, the declared element types and dims (symbolic names included) of graph
inputs and outputs, and node names. Weights and everything else are skipped by length, so reading
a large model costs one pass over its field headers, not a copy."""

import mmap
import os
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

Dim = Union[int, str, None]


class Declared(NamedTuple):
    """A graph input or output as the file declares it. elem_type is a TensorProto.DataType code,
    None for non-tensor types; dims is None when the file gives no shape (unknown rank), else one
    int (dim_value), str (dim_param) or None (neither) per dimension."""

    elem_type: Optional[int]
    dims: Optional[Tuple[Dim, ...]]


class Header(NamedTuple):
    producer_name: str
    domain: str
    doc_string: str
    model_version: int
    metadata: Dict[str, str]
    graph_name: str
    graph_doc_string: str
    values: Dict[str, Declared]  # graph inputs and outputs by name
    node_names: List[str]  # of the main graph's nodes, "" for unnamed ones


def read(source):
    """The Header of a model: a path (str or os.PathLike) or its serialized bytes.
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
    fields = {"producer_name": "", "domain": "", "doc_string": "", "model_version": 0}
    metadata, graph = {}, None
    for number, value in _fields(data, 0, len(data)):
        if number in (2, 4, 6):
            fields[{2: "producer_name", 4: "domain", 6: "doc_string"}[number]] = _text(data, value)
        elif number == 5:
            fields["model_version"] = _signed(_int(value))
        elif number == 7:
            graph = _graph(data, _span(value))
        elif number == 14:
            entry = dict.fromkeys((1, 2), "")
            entry.update((key, _text(data, item)) for key, item in _fields(data, *_span(value)) if key in (1, 2))
            metadata[entry[1]] = entry[2]
    if graph is None:
        raise ValueError("the model has no graph")
    return Header(metadata=metadata, **fields, **graph)


def _graph(data, span):
    name, doc, values, node_names = "", "", {}, []
    for number, value in _fields(data, *span):
        if number == 1:
            node_names.append(next((_text(data, v) for k, v in _fields(data, *_span(value)) if k == 3), ""))
        elif number == 2:
            name = _text(data, value)
        elif number == 10:
            doc = _text(data, value)
        elif number in (11, 12):
            value_name, declared = _value_info(data, _span(value))
            values.setdefault(value_name, declared)
    return {"graph_name": name, "graph_doc_string": doc, "values": values, "node_names": node_names}


def _value_info(data, span):
    """ValueInfoProto: (name, Declared) from name = 1, type = 2 (TypeProto.tensor_type = 1:
    elem_type = 1, shape = 2 of dim = 1, each dim_value = 1 or dim_param = 2)."""
    name, elem_type, dims = "", None, None
    for number, value in _fields(data, *span):
        if number == 1:
            name = _text(data, value)
        elif number == 2:
            for kind, tensor in _fields(data, *_span(value)):
                if kind != 1:
                    continue
                elem_type = 0
                for key, item in _fields(data, *_span(tensor)):
                    if key == 1:
                        elem_type = _int(item)
                    elif key == 2:
                        dims = tuple(_dim(data, _span(dim)) for k, dim in _fields(data, *_span(item)) if k == 1)
    return name, Declared(elem_type, dims)


def _dim(data, span):
    dim = None
    for number, value in _fields(data, *span):
        if number == 1:
            dim = _signed(_int(value))
        elif number == 2:
            dim = _text(data, value)
    return dim


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


def _int(value):
    if not isinstance(value, int):
        raise ValueError("a protobuf field has the wrong wire type")
    return value


def _signed(value):
    """An int64 field's value (varints hold negative numbers as 64-bit two's complement)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(data, value):
    start, end = _span(value)
    return bytes(data[start:end]).decode("utf-8", errors="replace")
