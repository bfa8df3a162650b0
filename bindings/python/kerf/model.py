"""Model: a loaded ONNX model, its graph inputs and outputs, saving."""

import ctypes
import os
from typing import Dict, NamedTuple, Optional, Tuple, Union

import numpy as np

from . import dtypes
from ._bindings import ModelMetadata as _CMetadata, ModelP, SessionOptions, SessionP, ValueInfo as _CValueInfo, check, lib, new_options
from ._handle import Handle
from .errors import KerfError, Status


class ValueInfo(NamedTuple):
    """A graph input or output, as the file declares it.

    dtype is None when numpy has no such type (bfloat16, undefined, non-tensor values).
    shape is None when the rank is unknown; each dim is an int, the symbolic name the file gives
    it (a str such as "batch"), or None when the file gives neither."""

    name: str
    dtype: Optional[np.dtype]
    shape: Optional[Tuple[Union[int, str, None], ...]]


class Metadata(NamedTuple):
    """A model's descriptive fields, with ONNX's names ("" or 0 when the file has none).
    doc_string is the model's; properties holds the file's metadata_props."""

    producer_name: str
    producer_version: str
    domain: str
    doc_string: str
    graph_name: str
    graph_doc_string: str
    model_version: int
    properties: Dict[str, str]


def _path_bytes(path):
    path = os.fsencode(path)
    if b"\0" in path:
        raise KerfError(Status.INVALID_ARGUMENT, f"path {path!r} contains a NUL byte")
    return path


def load(path):
    """Loads an ONNX model file (str, bytes or os.PathLike)."""
    handle = ModelP()
    check(lib.kerf_model_load(_path_bytes(path), ctypes.byref(handle)))
    return Model(handle)


def load_bytes(data):
    """Loads an ONNX model from serialized bytes (anything supporting the buffer protocol)."""
    data = bytes(data)
    handle = ModelP()
    check(lib.kerf_model_load_bytes(data, len(data), ctypes.byref(handle)))
    return Model(handle)


def _text(value):
    return value.decode("utf-8", errors="replace") if value else ""


def _dim(info, index):
    if info.dims[index] >= 0:
        return info.dims[index]
    name = info.dim_names[index] if info.dim_names else None
    return _text(name) if name else None


def _value_infos(handle, count_function, info_function):
    """([ValueInfo], [kerf_dtype code]) of the model's inputs or outputs."""
    count = ctypes.c_size_t()
    check(count_function(handle, ctypes.byref(count)))
    infos, codes = [], []
    for index in range(count.value):
        info = _CValueInfo(struct_size=ctypes.sizeof(_CValueInfo))
        check(info_function(handle, index, ctypes.byref(info)))
        shape = tuple(_dim(info, i) for i in range(info.rank)) if info.rank_known else None
        infos.append(ValueInfo(_text(info.name), dtypes.to_numpy(info.dtype), shape))
        codes.append(info.dtype)
    return infos, codes


def _metadata(handle):
    c = _CMetadata(struct_size=ctypes.sizeof(_CMetadata))
    check(lib.kerf_model_get_metadata(handle, ctypes.byref(c)))
    properties = {_text(c.property_keys[i]): _text(c.property_values[i]) for i in range(c.n_properties)}
    return Metadata(_text(c.producer_name), _text(c.producer_version), _text(c.domain), _text(c.doc_string),
                    _text(c.graph_name), _text(c.graph_doc_string), c.model_version, properties)


class Model(Handle):
    """A loaded model. Only compression calls (kerf.prune) change it; sessions made
    before keep what they were made from. Close it (or use `with`) to free it early;
    sessions made from it stay usable after it is closed.

    inputs, outputs: lists of ValueInfo (inputs exclude initializers).
    metadata: the file's Metadata (producer, doc strings, model_version, metadata_props)."""

    def __init__(self, handle):
        self._handle = handle
        # Compression keeps graph inputs, outputs and metadata, so they are read once.
        self.inputs, self._input_dtype_codes = _value_infos(handle, lib.kerf_model_input_count, lib.kerf_model_input)
        self.outputs, self._output_dtype_codes = _value_infos(handle, lib.kerf_model_output_count, lib.kerf_model_output)
        self.metadata = _metadata(handle)

    _kind = "model"

    def _free(self, handle):
        lib.kerf_model_free(handle)

    def session(self, threads=None, optimize=True, sparse_kernels=True, memory_limit=None, kept_values=()):
        """Prepares the model for running. threads=None uses one per core.
        sparse_kernels=False keeps every MatMul/Gemm dense (by default, mostly-zero constant
        weights use a sparse kernel for the batch sizes where it measured faster).
        memory_limit: bytes of tensor memory the session may hold (what it allocates while
        created or run and is still alive, outputs not yet converted included); an allocation
        past it raises KerfError(Status.OUT_OF_MEMORY). None: only kerf.set_memory_limit's.
        kept_values: names of values graph optimizations must not fuse away, so that
        `run(feeds, outputs=[...])` can return them though they are no graph outputs (any value
        the plan computes can be returned; this matters only for those fusion removes).
        The session may be run from several threads at once."""
        from .session import Session

        options = new_options(SessionOptions)
        threads = 0 if threads is None else int(threads)
        if not -2**31 <= threads < 2**31:
            raise KerfError(Status.INVALID_ARGUMENT, f"threads={threads} is out of range")
        options.threads = threads
        options.optimization_level = 1 if optimize else 0
        options.sparse_kernels = 1 if sparse_kernels else 0
        if memory_limit is not None:
            memory_limit = int(memory_limit)
            if not 0 < memory_limit < 2**64:
                raise KerfError(Status.INVALID_ARGUMENT, f"memory_limit={memory_limit} must be a positive number of bytes")
            options.memory_limit = memory_limit
        if isinstance(kept_values, str):
            kept_values = (kept_values,)
        kept = [str(name).encode("utf-8") for name in kept_values]
        kept_array = (ctypes.c_char_p * max(len(kept), 1))(*kept)
        options.kept_values = ctypes.cast(kept_array, ctypes.POINTER(ctypes.c_char_p))
        options.n_kept_values = len(kept)
        handle = SessionP()
        check(lib.kerf_session_create(self._live_handle(), ctypes.byref(options),
                                      ctypes.byref(handle)))
        return Session(handle, self)

    def save(self, path):
        """Writes the model to `path` atomically: on failure `path` is left as it was."""
        check(lib.kerf_model_save(self._live_handle(), _path_bytes(path)))

    def to_bytes(self):
        """The model serialized as ONNX protobuf bytes."""
        data = ctypes.c_void_p()
        size = ctypes.c_size_t()
        check(lib.kerf_model_save_bytes(self._live_handle(), ctypes.byref(data),
                                        ctypes.byref(size)))
        try:
            return ctypes.string_at(data.value, size.value) if size.value else b""
        finally:
            lib.kerf_free(data)

    def __repr__(self):
        state = "" if self._handle else " (closed)"
        names = lambda infos: ", ".join(info.name for info in infos)
        return f"<kerf.Model inputs=[{names(self.inputs)}] outputs=[{names(self.outputs)}]{state}>"
