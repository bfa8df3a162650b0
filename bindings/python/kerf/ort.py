"""An ONNX Runtime-compatible session: code written for onnxruntime runs on Kerf with
`import kerf as onnxruntime` (or `as rt`, `as ort`).

    import kerf as rt
    sess = rt.InferenceSession("model.onnx", providers=rt.get_available_providers())
    input_name = sess.get_inputs()[0].name
    outputs = sess.run(None, {input_name: x})     # a list, in get_outputs() order

Kerf runs on the CPU only: providers other than CPUExecutionProvider are accepted and ignored
with a warning (as ONNX Runtime warns of a provider it does not have). Errors are the classes of
kerf.capi.onnxruntime_pybind11_state, raised in ONNX Runtime's situations; a missing feed is a
ValueError and a path_or_bytes of another type a TypeError, as there.

Not provided: IOBinding and OrtValue (io_binding, run_with_iobinding, run_with_ort_values),
run_async, profiling (end_profiling), get_overridable_initializers, set_providers, sparse
tensors, sequence and map inputs, custom op libraries, the .ort format."""

import os
import warnings
from typing import Dict, NamedTuple

from . import _onnx_header
from .capi.onnxruntime_pybind11_state import Fail, raising_ort_errors
from .dtypes import DType
from .errors import Status
from .model import load, load_bytes
from .ort_options import GraphOptimizationLevel, SessionOptions

CPU = "CPUExecutionProvider"


def get_available_providers():
    """The execution providers Kerf has: the CPU."""
    return [CPU]


def get_device():
    return "CPU"


class NodeArg:
    """A graph input or output, as ONNX Runtime describes it. shape: [] when the file gives no
    shape, else per dim an int, the symbolic name (str) or None when the dim has neither.
    type: "tensor(float)", "tensor(int64)", ... (the ONNX element type's name)."""

    __slots__ = ("name", "shape", "type")

    def __init__(self, info, dtype_code):
        self.name = info.name
        self.shape = list(info.shape or ())
        self.type = _type_name(dtype_code or None)

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


def _type_name(elem_type):
    if elem_type is None:
        return "unknown"
    try:
        return f"tensor({DType(elem_type).name.lower()})"
    except ValueError:
        return f"tensor(type {elem_type})"


class ModelMetadata(NamedTuple):
    """The model's metadata, with ONNX Runtime's names: description is the model's doc_string,
    graph_description the graph's, version the model_version, custom_metadata_map the
    metadata_props."""

    producer_name: str
    graph_name: str
    domain: str
    description: str
    graph_description: str
    version: int
    custom_metadata_map: Dict[str, str]


class InferenceSession:
    """A model prepared for running, made from a path (str or os.PathLike) or serialized bytes.

    sess_options: a SessionOptions (or onnxruntime's own: its attributes are read the same way).
    providers: names or (name, options) pairs; only CPUExecutionProvider is used.
    provider_options and ONNX Runtime's keyword arguments (enable_fallback, ...): accepted, unused.
    get_inputs() and get_outputs() describe the values as the file declares them (ONNX Runtime
    merges in the shapes its shape inference finds)."""

    def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None, **kwargs):
        if isinstance(path_or_bytes, (str, os.PathLike)):
            source, loader = os.fspath(path_or_bytes), load
        elif isinstance(path_or_bytes, bytes):
            source, loader = path_or_bytes, load_bytes
        else:
            raise TypeError(f"Unable to load from type '{type(path_or_bytes)}'")
        self._sess_options = sess_options if sess_options is not None else SessionOptions()
        _warn_unused(providers, self._sess_options)
        threads, optimize = _session_arguments(self._sess_options)
        with raising_ort_errors(lambda: _parses(source)):
            with loader(source) as model:
                self._session = model.session(threads=threads, optimize=optimize)
                self._inputs = [NodeArg(*pair) for pair in zip(model.inputs, model._input_dtype_codes)]
                self._outputs = [NodeArg(*pair) for pair in zip(model.outputs, model._output_dtype_codes)]
                m = model.metadata
                self._meta = ModelMetadata(m.producer_name, m.graph_name, m.domain, m.doc_string,
                                           m.graph_doc_string, m.model_version, m.properties)
        self._input_names = [arg.name for arg in self._inputs]
        self._output_names = [arg.name for arg in self._outputs]

    def run(self, output_names, input_feed, run_options=None):
        """Runs the model on input_feed ({input name: numpy array}) and returns the outputs named
        in output_names (None or []: all, in get_outputs() order) as a list of numpy arrays."""
        missing = [name for name in self._input_names if name not in input_feed]
        if missing:
            raise ValueError(f"Required inputs ({missing}) are missing from input feed ({list(input_feed)}).")
        if run_options is not None and run_options.terminate:
            raise Fail(Status.CANCELLED, "Exiting due to terminate flag being set to true.")
        names = list(output_names) if output_names else self._output_names
        with raising_ort_errors():
            results = self._session.run(input_feed, names)
        return [results[name] for name in names]

    def get_inputs(self):
        return self._inputs

    def get_outputs(self):
        return self._outputs

    def get_modelmeta(self):
        return self._meta

    def get_providers(self):
        return [CPU]

    def get_provider_options(self):
        return {CPU: {}}

    def get_session_options(self):
        return self._sess_options


def _warn_unused(providers, options):
    """Warns of what the session was asked for and will not do."""
    for provider in providers or ():
        name = provider[0] if isinstance(provider, tuple) else provider
        if name != CPU:
            warnings.warn(f"Specified provider '{name}' is not in available provider names. "
                          f"Available providers: '{CPU}'. Kerf runs on the CPU.", stacklevel=3)
    if getattr(options, "enable_profiling", False):
        warnings.warn("SessionOptions.enable_profiling is ignored: Kerf writes no profile.", stacklevel=3)
    if getattr(options, "optimized_model_filepath", ""):
        warnings.warn("SessionOptions.optimized_model_filepath is ignored: Kerf does not save its optimized graph.",
                      stacklevel=3)


def _session_arguments(options):
    """(threads, optimize) for Model.session from ONNX Runtime session options."""
    threads = int(options.intra_op_num_threads)
    optimize = int(options.graph_optimization_level) != GraphOptimizationLevel.ORT_DISABLE_ALL
    return (threads or None), optimize


def _parses(source):
    try:
        _onnx_header.node_names(source)
        return True
    except (ValueError, OSError):
        return False
