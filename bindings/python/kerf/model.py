"""Model: a loaded ONNX model, its graph inputs and outputs, saving."""

import ctypes
import os
from typing import NamedTuple, Optional, Tuple

import numpy as np

from . import dtypes
from ._bindings import ModelP, SessionOptions, SessionP, ValueInfo as _CValueInfo, check, lib, new_options
from ._handle import Handle
from .errors import KerfError, Status


class ValueInfo(NamedTuple):
    """A graph input or output.

    dtype is None when numpy has no such type (bfloat16, undefined).
    shape is None when the rank is unknown; a dim is None when symbolic or unknown."""

    name: str
    dtype: Optional[np.dtype]
    shape: Optional[Tuple[Optional[int], ...]]


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


def _value_infos(handle, count_function, info_function):
    count = ctypes.c_size_t()
    check(count_function(handle, ctypes.byref(count)))
    infos = []
    for index in range(count.value):
        info = _CValueInfo(struct_size=ctypes.sizeof(_CValueInfo))
        check(info_function(handle, index, ctypes.byref(info)))
        shape = None
        if info.rank_known:
            shape = tuple(None if info.dims[i] < 0 else info.dims[i] for i in range(info.rank))
        name = info.name.decode("utf-8", errors="replace") if info.name else ""
        infos.append(ValueInfo(name, dtypes.to_numpy(info.dtype), shape))
    return infos


class Model(Handle):
    """A loaded model. Only compression calls (kerf.prune) change it; sessions made
    before keep what they were made from. Close it (or use `with`) to free it early;
    sessions made from it stay usable after it is closed."""

    def __init__(self, handle):
        self._handle = handle
        # Compression keeps graph inputs and outputs, so the signature is read once.
        self.inputs = _value_infos(handle, lib.kerf_model_input_count, lib.kerf_model_input)
        self.outputs = _value_infos(handle, lib.kerf_model_output_count, lib.kerf_model_output)

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
