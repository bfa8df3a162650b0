"""Session: a model prepared for running on numpy arrays."""

import ctypes
import threading
import weakref

import numpy as np

from . import _tensor
from ._bindings import TensorP, TensorView, check, lib, run_into_by_address, take_string
from .errors import KerfError, Status


class Session:
    """Made by Model.session(). Runs are serialized by a lock, because a C
    session must be used by one thread at a time (ctypes releases the GIL)."""

    def __init__(self, handle, model):
        self._handle = handle
        self._address = ctypes.cast(handle, ctypes.c_void_p).value
        self._lock = threading.Lock()
        # Not a reference that keeps the model alive: the C session runs without it, and the
        # weights it packed a copy of are freed with the model.
        self._model = weakref.ref(model)
        self._model_repr = repr(model)
        self.inputs = model.inputs
        self.outputs = model.outputs
        self._declared = {info.name: info.dtype for info in self.inputs}
        self._output_names = [info.name for info in self.outputs]
        self._name_arrays = {}
        self._calls = {}  # (input names, output names or None) -> _Call

    def run(self, feeds, outputs=None):
        """Runs the model on `feeds` ({input name: array-like}).

        Returns {output name: numpy array} for `outputs` (default: every graph
        output), in that order. The arrays are copies owned by numpy; the feeds
        are read in place, without a copy."""
        declared = self._declared
        arrays = [_tensor.as_feed_array(name, value, declared.get(name)) for name, value in feeds.items()]
        wanted = None if outputs is None else (outputs,) if isinstance(outputs, str) else tuple(outputs)
        key = (tuple(feeds), wanted)
        with self._lock:
            self._live_handle()
            call = self._calls.get(key)
            if call is None:
                call = _Call(self, key[0], wanted)
                if len(self._calls) < 64:
                    self._calls[key] = call
            keep = call.describe_inputs(arrays)
            destinations = call.destinations()
            status = run_into_by_address(self._address, *call.addresses)
            del keep  # the arrays the views pointed at may go now
            if status:
                check(status)
            return call.collect(destinations)

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

    @property
    def model(self):
        """The Model this session was made from, while something else keeps it alive (the
        session does not), else None."""
        return self._model()

    def __repr__(self):
        state = "" if self._handle else " (closed)"
        return f"<kerf.Session of {self._model_repr}{state}>"


class _Call:
    """The ctypes arguments of runs with one tuple of input names and one selection of outputs
    (None: all), made once and refilled per run under the session's lock.

    Outputs are expected in the dtype and shape of the last run's: Kerf copies an output that
    matches straight into a new numpy array (kerf_session_run_into), and hands back any other
    as a tensor, which is copied out and freed."""

    __slots__ = ("c_input_names", "inputs", "input_views", "dims", "fed", "output_names", "c_output_names",
                 "results", "outputs", "output_views", "output_dims", "expected", "addresses")

    def __init__(self, session, input_names, wanted):
        self.c_input_names = session._c_names(input_names)
        self.inputs = (TensorView * max(len(input_names), 1))()
        self.input_views = [self.inputs[i] for i in range(len(input_names))]  # views into `inputs`
        self.dims = [(ctypes.c_int64 * _tensor.MAX_RANK)() for _ in input_names]
        for view, dims in zip(self.input_views, self.dims):
            view.dims = dims
        self.output_names = list(wanted) if wanted is not None else session._output_names
        self.c_output_names = session._c_names(self.output_names) if wanted is not None else None
        count = max(len(self.output_names), 1)
        self.results = (TensorP * count)()
        self.outputs = (TensorView * count)()
        self.output_views = [self.outputs[i] for i in range(len(self.output_names))]
        self.output_dims = [(ctypes.c_int64 * _tensor.MAX_RANK)() for _ in self.output_names]
        self.expected = [None] * len(self.output_names)  # (shape, numpy dtype) per output
        for view in self.output_views:
            view.dtype = -1  # matches no output: the first run returns them all as tensors
        self.fed = [None] * len(input_names)  # (shape, dtype) each input view describes
        address = ctypes.addressof
        self.addresses = (address(self.c_input_names), address(self.inputs), len(input_names),
                          address(self.c_output_names) if self.c_output_names is not None else None,
                          address(self.results), address(self.outputs), len(self.output_names))

    def describe_inputs(self, arrays):
        """Points the input views at `arrays` (from as_feed_array); returns what they point at,
        which the caller keeps alive until Kerf has read it. A view that already describes an
        array of the same shape and dtype only gets the new address."""
        keep = []
        fed = self.fed
        for i, array in enumerate(arrays):
            described = (array.shape, array.dtype)
            if fed[i] == described and array.nbytes:
                self.input_views[i].data = _tensor._address(array)
                keep.append(array)
                continue
            keep.append(_tensor.fill_view(self.input_views[i], self.dims[i], array))
            fed[i] = described if _tensor.code_of(array.dtype) is not None else None
        return keep

    def destinations(self):
        """New arrays for the outputs whose shape is expected (None for the others), with the
        output views pointing at them."""
        arrays = []
        for view, expected in zip(self.output_views, self.expected):
            if expected is None:
                arrays.append(None)
                continue
            array = np.empty(*expected)
            if array.nbytes:
                view.data = _tensor._address(array)
            arrays.append(array)
        return arrays

    def collect(self, destinations):
        """{name: array} after a successful run: the destinations Kerf filled, and copies of the
        outputs it returned as tensors (which are freed, and whose shape is expected next)."""
        results = self.results
        out = {}
        returned = False
        try:
            for i, (name, array) in enumerate(zip(self.output_names, destinations)):
                if results[i]:
                    returned = True
                    array = _tensor.read_view(self.output_views[i], name)
                    self._expect(i, array)
                out[name] = array
        finally:
            if returned:
                lib.kerf_tensors_free(results, len(self.output_names))
        return out

    def _expect(self, i, array):
        """Describes `array`'s dtype and shape in output view i, for the next run to copy into."""
        view = self.output_views[i]
        code = _tensor.code_of(array.dtype)
        if code is None or array.ndim > _tensor.MAX_RANK:
            self.expected[i] = None
            view.dtype = -1
            return
        self.expected[i] = (array.shape, array.dtype)
        dims = self.output_dims[i]
        dims[:array.ndim] = array.shape
        view.dims = dims
        view.dtype = code
        view.rank = array.ndim
        view.byte_size = array.nbytes
        view.data = None
