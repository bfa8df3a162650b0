"""Kerf: ONNX inference from Python, over the C library through ctypes.

ONNX Runtime's API (kerf.ort, kerf.quantization): code written for onnxruntime runs with only
the import changed.

    import kerf as rt
    sess = rt.InferenceSession("model.onnx")
    outputs = sess.run(None, {sess.get_inputs()[0].name: x})

Kerf's own API:

    import kerf
    with kerf.load("model.onnx") as model, model.session() as session:
        print(model.inputs)        # [ValueInfo(name='input', dtype=float32, shape=(None, 64))]
        outputs = session.run({"input": x})   # {output name: numpy array}
    report = kerf.prune("model.onnx", "pruned.onnx", sparsity=0.7)
    report = kerf.quantize("model.onnx", "int8.onnx", mode="static", calibration="calib.npz")
    report = kerf.train("model.onnx", "trained.onnx", data="train.npz",
                        loss=kerf.loss.CrossEntropy(output="logits", labels="y"),
                        optimizer=kerf.optim.AdamW(lr=1e-3), epochs=10)
    report.plot("training.svg")   # the reports of sensitivity, quantize and train draw themselves
    kerf.student("bert.onnx", "student.onnx", drop_layers="every-other")   # then kerf.distill it

Every failure raises kerf.KerfError, whose .status is a kerf.Status.
The library is found through $KERF_LIBRARY, else kerf/libKerf.so.
"""

from ._bindings import lib as _lib
from .dtypes import DType
from .errors import KerfError, Status
from .model import Metadata, Model, ValueInfo, load, load_bytes
from .prune import prune, sensitivity
from .quantize import quantize
from .student import student
from .compress_common import QuantizeReport, Report, SensitivityReport, TrainReport
from .session import Session
from . import loss, optim, plots
from .train import Trainer, distill, train
from .ort import InferenceSession, ModelMetadata, NodeArg, get_available_providers, get_device
from .ort_options import ExecutionMode, GraphOptimizationLevel, RunOptions, SessionOptions

__version__ = _lib.kerf_version().decode("utf-8")


def abi_version():
    """kerf_abi_version() of the loaded library: (major << 16) | minor."""
    return _lib.kerf_abi_version()


def instruction_set():
    """The instruction-set level Kerf's kernels run at ("avx512_vnni", "avx512", "avx_vnni",
    "avx2" or "scalar"): the CPU's, capped by $KERF_MAX_ISA as it was when the library loaded."""
    return _lib.kerf_instruction_set().decode("ascii")


def set_memory_limit(nbytes):
    """Sets the allocation limit, in bytes: the most tensor memory Kerf holds in this process
    (weights, activations, outputs, buffers kept for reuse). Loading, session creation, runs
    and tensor creation raise KerfError(Status.OUT_OF_MEMORY) instead of passing it. None or 0
    restores the default, 80% of physical memory. Returns the previous limit."""
    previous = _lib.kerf_memory_limit()
    nbytes = 0 if nbytes is None else int(nbytes)
    if not 0 <= nbytes < 2**64:
        raise KerfError(Status.INVALID_ARGUMENT, f"memory limit {nbytes} must be a number of bytes >= 0")
    _lib.kerf_set_memory_limit(nbytes)
    return previous


def memory_limit():
    """The allocation limit in force, in bytes (see set_memory_limit)."""
    return _lib.kerf_memory_limit()


__all__ = [
    "ExecutionMode", "GraphOptimizationLevel", "InferenceSession", "ModelMetadata", "NodeArg", "RunOptions",
    "SessionOptions", "get_available_providers", "get_device",
    "DType", "KerfError", "Metadata", "Model", "Report", "Session", "Status", "ValueInfo",
    "abi_version", "instruction_set", "load", "memory_limit", "set_memory_limit", "load_bytes", "prune", "quantize", "sensitivity", "__version__",
    "QuantizeReport", "SensitivityReport", "TrainReport", "Trainer", "distill", "loss", "optim", "plots", "train",
]
