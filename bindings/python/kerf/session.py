"""Session: a model prepared for running on numpy arrays."""

import ctypes
import threading

from . import _tensor
from ._bindings import TensorP, TensorView, check, lib, take_string
from .errors import KerfError, Status


class Session:
    """Made by Model.session(). Runs are serialized by a lock, because a C
    session must be used by one thread at a time (ctypes releases the GIL)."""

    def __init__(self, handle, model):
        self._handle = handle
        self._lock = threading.Lock()
        self.model = model  # kept for inputs/outputs; C holds its own reference
        self.inputs = model.inputs
        self.outputs = model.outputs
        self._declared = {info.name: info.dtype for info in self.inputs}
        self._output_names = [info.name for info in self.outputs]
        self._name_arrays = {}

    def run(self, feeds, outputs=None):
        """Runs the model on `feeds` ({input name: array-like}).

        Returns {output name: numpy array} for `outputs` (default: every graph
        output), in that order. The arrays are copies owned by numpy; the feeds
        are read in place, without a copy."""
        declared = self._declared
        arrays = [(name, _tensor.as_feed_array(name, value, declared.get(name)))
                  for name, value in feeds.items()]
        if outputs is None:
            output_names = self._output_names
            c_output_names = None
        else:
            output_names = [outputs] if isinstance(outputs, str) else list(outputs)
            c_output_names = self._c_names(output_names)
        c_input_names = self._c_names([name for name, _ in arrays])
        keep = []  # dims and converted arrays the views point at, alive until the call returns
        inputs = (TensorView * max(len(arrays), 1))(*(_tensor.view(array, keep) for _, array in arrays))
        count = len(output_names)
        results = (TensorP * max(count, 1))()
        views = (TensorView * max(count, 1))()
        with self._lock:
            status = lib.kerf_session_run_views(self._live_handle(), c_input_names, inputs, len(arrays),
                                                c_output_names, results, views, count)
        try:
            if status:
                check(status)
            read = _tensor.read_view
            return {name: read(views[index], name) for index, name in enumerate(output_names)}
        finally:
            lib.kerf_tensors_free(results, count)

    def _c_names(self, names):
        """`names` as a C array of UTF-8 strings, cached per tuple of names (feeds usually
        arrive with the same keys on every run)."""
        key = tuple(names)
        array = self._name_arrays.get(key)
        if array is None:
            array = (ctypes.c_char_p * max(len(names), 1))(*(name.encode("utf-8") for name in names))
            if len(self._name_arrays) < 64:
                self._name_arrays[key] = array
        return array

    def plan(self):
        """The operators a run executes, in order (after Kerf's graph optimizations): "OpType",
        or "domain.OpType" outside the default domain (e.g. "kerf.QuantizedConv")."""
        text = ctypes.c_void_p()
        with self._lock:
            check(lib.kerf_session_plan(self._live_handle(), ctypes.byref(text)))
        value = take_string(text)
        return value.split("\n") if value else []

    def _live_handle(self):
        if not self._handle:
            raise KerfError(Status.INVALID_ARGUMENT, "the session is closed")
        return self._handle

    def close(self):
        with self._lock:
            handle, self._handle = self._handle, None
        if handle:
            lib.kerf_session_free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass

    def __repr__(self):
        state = "" if self._handle else " (closed)"
        return f"<kerf.Session of {self.model!r}{state}>"
