"""kerf.prune and kerf.sensitivity: magnitude, N:M and channel pruning of ONNX files."""

import ctypes
import os

import numpy as np

from . import _tensor
from ._bindings import PruneOptions, SensitivityOptions, TensorP, check, lib, new_options, take_string
from .compress_common import ProgressAdapter, Report, SensitivityReport, c_strings, choice, rewrite_model
from .errors import KerfError, Status
from .model import Model, load

_METHODS = {"magnitude": 0, "n:m": 1, "channel": 2}
_SCOPES = {"layer": 0, "global": 1}
_CRITERIA = {"l1": 0, "l2": 1, "bn_gamma": 2}


def _method(method, n, m):
    """("n:m" code, n, m) for method names, including the "2:4" shorthand."""
    if isinstance(method, str) and ":" in method and method != "n:m":
        try:
            n, m = (int(part) for part in method.split(":"))
        except ValueError:
            raise KerfError(Status.INVALID_ARGUMENT, f"method {method!r} is not N:M (e.g. '2:4')") from None
        return _METHODS["n:m"], n, m
    return choice(method, _METHODS, "method"), n, m


def prune(src, dst=None, *, sparsity=0.5, method="magnitude", scope="layer", n=2, m=4, exclude=(),
          per_tensor=None, criterion="l1", min_elements=0, max_tensor_sparsity=0.99, store_sparse=False,
          channel_multiple=1, progress=None):
    """Prunes the Conv, Gemm and MatMul weights of an ONNX model and returns a Report.

    src: a path, or a kerf.Model (changed in place; saved only if dst is given).
    dst: where to write the result; None with a path src rewrites src in place,
         atomically (a failure leaves it byte-identical).
    method: "magnitude" (zero the smallest weights), "n:m" (keep n of every m along the
        reduction dimension; "2:4" is short for method="n:m", n=2, m=4), or "channel"
        (remove whole filters/units and rewrite their consumers: the file gets smaller).
    sparsity: fraction of weights (magnitude) or channels (channel) removed, in [0, 1).
    scope: "layer" (every tensor to the target) or "global" (one threshold, each tensor
        capped at max_tensor_sparsity).
    exclude: weight names, node names or op types to leave alone.
    per_tensor: {weight name: sparsity} overriding sparsity and scope for those weights.
    criterion: channel ranking, "l1", "l2" or "bn_gamma".
    channel_multiple: channel pruning keeps a multiple of this many channels in every group of
        more than this many (the kept count rounded to the nearest multiple), so that blocked
        kernels stay fast: 16 keeps ONNX Runtime's NCHWc convolutions (blocks of 8 or 16) on
        their fast path. 1: no rounding.
    store_sparse: save weights whose sparse form is smaller as sparse_initializer.
    progress: None, True (a progress bar on stderr: tqdm's when tqdm is installed) or a
      callable(done, total, message), called at 0 and after each weight (magnitude, N:M) or
      group of tied channels (channel); a callable returning False cancels
      (KerfError(Status.CANCELLED), the model left as it was).
    """
    method_code, n, m = _method(method, n, m)
    options = new_options(PruneOptions)
    options.method = method_code
    options.scope = choice(scope, _SCOPES, "scope")
    options.channel_criterion = choice(criterion, _CRITERIA, "criterion")
    try:
        options.sparsity = float(sparsity)
        options.max_tensor_sparsity = float(max_tensor_sparsity)
        options.n, options.m = int(n), int(m)
        options.min_elements = int(min_elements)
        options.channel_multiple = int(channel_multiple)
    except (TypeError, ValueError, OverflowError) as error:
        raise KerfError(Status.INVALID_ARGUMENT, f"invalid pruning option: {error}") from None
    options.store_sparse = 1 if store_sparse else 0
    excluded, options.n_exclude = c_strings(exclude, "exclude")
    options.exclude = excluded
    per_tensor = dict(per_tensor or {})
    names, options.n_per_tensor = c_strings(per_tensor.keys(), "per_tensor")
    levels = (ctypes.c_double * max(len(per_tensor), 1))(*(float(v) for v in per_tensor.values()))
    options.per_tensor_names, options.per_tensor_sparsity = names, levels
    adapter = ProgressAdapter(progress, "prune")
    options.progress = adapter.function

    def run(model):
        report = ctypes.c_void_p()
        status = lib.kerf_prune(model._live_handle(), ctypes.byref(options), ctypes.byref(report))
        adapter.reraise()
        check(status)
        return Report.from_json(take_string(report))

    return rewrite_model(src, dst, run)


def sensitivity(model, data, *, levels=(0.5, 0.7, 0.9), labels=None, exclude=(), min_elements=0,
                batch_size=32, threads=None, progress=None):
    """Prunes each prunable weight alone to each level and measures the outputs.

    model: a kerf.Model or a path. data: {input name: array with samples along axis 0},
    or a path to an .npz holding them (its "labels" array, if any, is used as labels).
    labels: integer class per sample; adds accuracy of the first output.
    progress: None, True (a progress bar on stderr: tqdm's when tqdm is installed) or a
      callable(done, total, message); a callable returning False cancels.
    Returns a SensitivityReport (a Report) with "rows" (tensor, level, relative_error,
    max_abs_error, cosine, accuracy), "levels", "samples" and "baseline_accuracy";
    report.plot("sensitivity.svg") draws it.
    """
    if isinstance(data, (str, bytes, os.PathLike)):
        with np.load(data) as archive:
            data = {key: archive[key] for key in archive.files}
        if labels is None and "labels" in data:
            labels = data.pop("labels")
    if not isinstance(data, dict) or not data:
        raise KerfError(Status.INVALID_ARGUMENT, "data must be a non-empty dict of input name -> array, or an .npz path")
    options = new_options(SensitivityOptions)
    level_values = [float(level) for level in levels]
    options.levels = (ctypes.c_double * max(len(level_values), 1))(*level_values)
    options.n_levels = len(level_values)
    excluded, options.n_exclude = c_strings(exclude, "exclude")
    options.exclude = excluded
    options.min_elements = int(min_elements)
    options.batch_size = int(batch_size)
    options.threads = 0 if threads is None else int(threads)
    adapter = ProgressAdapter(progress, "sensitivity")
    options.progress = adapter.function

    owned = not isinstance(model, Model)
    model = load(model) if owned else model
    tensors = []
    try:
        names, count = c_strings(data.keys(), "data")
        for name, value in data.items():
            tensors.append(_tensor.create(_tensor.as_feed_array(name, value)))
        label_tensor = TensorP()
        if labels is not None:
            label_tensor = _tensor.create(_tensor.as_feed_array("labels", np.asarray(labels)))
            tensors.append(label_tensor)
        inputs = (TensorP * max(count, 1))(*tensors[:count])
        table = ctypes.c_void_p()
        status = lib.kerf_sensitivity(model._live_handle(), names, inputs, count, label_tensor,
                                      ctypes.byref(options), ctypes.byref(table))
        adapter.reraise()
        check(status)
        return SensitivityReport.from_json(take_string(table))
    finally:
        for tensor in tensors:
            lib.kerf_tensor_free(tensor)
        if owned:
            model.close()
