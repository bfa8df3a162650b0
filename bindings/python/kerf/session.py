"""Session: a model prepared for running on numpy arrays."""

import ctypes
import sys
import threading
import time
import weakref

import numpy as np

from . import _tensor
from ._bindings import TensorP, TensorView, check, lib, run_into_by_address, take_string
from ._handle import Handle
from .errors import KerfError, Status


class Session(Handle):
    """Made by Model.session(). `run` may be called from several threads at once (ctypes
    releases the GIL while Kerf runs); `close` waits for the runs in flight."""

    def __init__(self, handle, model):
        self._handle = handle
        self._address = ctypes.cast(handle, ctypes.c_void_p).value
        self._lock = threading.Lock()
        self._inflight = []  # one token per run in progress
        # Not a reference that keeps the model alive: the C session runs without it, and the
        # weights it packed a copy of are freed with the model.
        self._model = weakref.ref(model)
        self._model_repr = repr(model)
        self.inputs = model.inputs
        self.outputs = model.outputs
        self._declared = {info.name: info.dtype for info in self.inputs}
        self._output_names = [info.name for info in self.outputs]
        self._name_arrays = {}
        self._calls = {}  # (input names, output names or None) -> idle _Calls (one per concurrent run)

    def run(self, feeds, outputs=None):
        """Runs the model on `feeds` ({input name: array-like}).

        Returns {output name: numpy array} for `outputs` (default: every graph
        output), in that order. The arrays are owned by numpy and belong to the
        caller; the feeds are read in place, without a copy."""
        if outputs is None:
            wanted, key = None, tuple(feeds)
        else:
            wanted = (outputs,) if isinstance(outputs, str) else tuple(outputs)
            key = (tuple(feeds), wanted)
        # A token per run in flight (list append and pop are atomic): `close` sets the handle to
        # None, then waits for the tokens; a run adds its token, then checks the handle.
        inflight = self._inflight
        inflight.append(None)
        try:
            if not self._handle:
                self._live_handle()  # raises
            idle = self._calls.get(key)
            try:
                call = idle.pop()
            except (AttributeError, IndexError):  # no list for this key yet, or every call busy
                call = _Call(self, tuple(feeds), wanted)
                if idle is None and len(self._calls) < 64:
                    idle = self._calls.setdefault(key, [])
            try:
                keep = call.describe_inputs(feeds, self._declared)
                call.prepare_outputs()
                status = run_into_by_address(self._address, *call.addresses)
                del keep  # the arrays the views pointed at may go now
                if status:
                    check(status)
                return call.collect()
            finally:
                if idle is not None and len(idle) < 8:
                    idle.append(call)
        finally:
            inflight.pop()

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

    _kind = "session"

    def close(self):
        """Frees the C session once the runs in flight have returned; later runs raise."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle:
            self._free(handle)

    def _free(self, handle):
        while self._inflight:
            time.sleep(0.001)
        lib.kerf_session_free(handle)

    @property
    def model(self):
        """The Model this session was made from, while something else keeps it alive (the
        session does not), else None."""
        return self._model()

    def __repr__(self):
        state = "" if self._handle else " (closed)"
        return f"<kerf.Session of {self._model_repr}{state}>"


_ndarray = np.ndarray
_addressof = ctypes.addressof
_char_from_buffer = ctypes.c_char.from_buffer


def _dict_maker(names):
    """A function of a list of len(names) values giving {names[i]: values[i]}: a dict display for
    one or two names (about 0.25 us less per run than dict(zip(...)))."""
    if len(names) == 1:
        (a,) = names
        return lambda v: {a: v[0]}
    if len(names) == 2:
        a, b = names
        return lambda v: {a: v[0], b: v[1]}
    return lambda v: dict(zip(names, v))


def _references(items, i):
    """sys.getrefcount of items[i], as seen from here."""
    return sys.getrefcount(items[i])


# The count _references gives for an array only a list holds (interpreter versions differ).
_UNSHARED = _references([np.empty(1)], 0)


class _Call:
    """The ctypes arguments of runs with one tuple of input names and one selection of outputs
    (None: all), made once and refilled per run; one run uses it at a time.

    Outputs are expected in the dtype and shape of the last run's: Kerf copies an output that
    matches straight into a numpy array Python made (kerf_session_run_into), and hands back any
    other as a tensor, which is copied out and freed. The array of the last run is filled again
    when nothing but this object refers to it any more (the caller dropped it)."""

    __slots__ = ("c_input_names", "inputs", "input_views", "dims", "fed", "output_names", "c_output_names",
                 "results", "outputs", "output_views", "output_dims", "expected", "last", "addresses",
                 "results_bytes", "no_results", "as_dict")

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
        self.last = [None] * len(self.output_names)  # the array output view i points at, if any
        for view in self.output_views:
            view.dtype = -1  # matches no output: the first run returns them all as tensors
        self.fed = [None] * len(input_names)  # (shape, dtype) each input view describes
        address = ctypes.addressof
        self.addresses = (address(self.c_input_names), address(self.inputs), len(input_names),
                          address(self.c_output_names) if self.c_output_names is not None else None,
                          address(self.results), address(self.outputs), len(self.output_names))
        self.results_bytes = memoryview(self.results).cast("B")
        self.no_results = bytes(ctypes.sizeof(self.results))
        self.as_dict = _dict_maker(self.output_names)

    def describe_inputs(self, feeds, declared):
        """Points the input views at the arrays of `feeds` (in this call's name order), converted
        by as_feed_array where needed; returns what they point at, which the caller keeps alive
        until Kerf has read it. A view that already describes an ndarray of the same shape and
        dtype only gets the new address."""
        keep = []
        fed, views = self.fed, self.input_views
        i = 0
        for name, value in feeds.items():
            described = fed[i]
            if type(value) is _ndarray and described is not None and value.shape == described[0] \
                    and (value.dtype is described[1] or value.dtype == described[1]):
                try:  # C-contiguous, writable and not empty, or it raises
                    views[i].data = _addressof(_char_from_buffer(value))
                    keep.append(value)
                    i += 1
                    continue
                except (TypeError, ValueError):
                    pass
            array = _tensor.as_feed_array(name, value, declared.get(name))
            keep.append(_tensor.fill_view(views[i], self.dims[i], array))
            fed[i] = (array.shape, array.dtype) if _tensor.code_of(array.dtype) is not None else None
            i += 1
        return keep

    def prepare_outputs(self):
        """An array for each output whose shape is expected, with its view pointing at it: the
        last run's when the caller no longer holds it, else a new one."""
        last = self.last
        for i, expected in enumerate(self.expected):
            if expected is None or (last[i] is not None and _references(last, i) == _UNSHARED):
                continue
            array = last[i] = np.empty(*expected)
            self.output_views[i].data = _tensor._address(array) if array.nbytes else None

    def collect(self):
        """{name: array} after a successful run: the arrays Kerf filled, and copies of the
        outputs it returned as tensors (which are freed, and whose shape is expected next)."""
        if self.results_bytes.tobytes() != self.no_results:  # some output came back as a tensor
            results = self.results
            done = 0
            try:
                for i, name in enumerate(self.output_names):
                    if results[i]:
                        self._expect(i, _tensor.read_view(self.output_views[i], name))
                    done = i + 1
            finally:
                # A view Kerf filled for a tensor that was not read (an error above) points into
                # that tensor, freed here: it must match no output of the next run.
                for i in range(done, len(self.output_names)):
                    if results[i]:
                        self.output_views[i].dtype = -1
                        self.expected[i] = self.last[i] = None
                lib.kerf_tensors_free(results, len(self.output_names))
        return self.as_dict(self.last)

    def _expect(self, i, array):
        """Makes `array` output i's last array, and describes its dtype and shape in output view i
        for the next run to copy into."""
        self.last[i] = array
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
        view.data = _tensor._address(array) if array.nbytes else None
