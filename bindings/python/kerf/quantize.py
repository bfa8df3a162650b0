"""kerf.quantize: int8 quantization of ONNX files (dynamic, or static QDQ with calibration)."""

import ctypes
import os

import numpy as np

from . import _tensor
from ._bindings import CalibrationCallback, QuantizeOptions, check, lib, new_options, take_string
from .compress_common import ProgressAdapter, QuantizeReport, c_strings, choice, rewrite_model
from .errors import KerfError, Status

_MODES = {"dynamic": 0, "static": 1}
_METHODS = {"minmax": 0, "percentile": 1, "entropy": 2}
_ACTIVATIONS = {"uint8": 0, "int8": 1}


def quantize(src, dst=None, *, mode="dynamic", calibration=None, method="minmax", per_channel=True, exclude=(),
             auto_tolerance=None, progress=None, percentile=99.99, activation_type="uint8", op_types=None,
             quantize_embeddings=None, smooth_quant=None, batch_size=32, threads=None, validation=None):
    """Quantizes an ONNX model to int8 and returns a QuantizeReport (a Report; its plot()
    draws the per-node SQNR).

    src: a path, or a kerf.Model (changed in place; saved only if dst is given).
    dst: where to write the result; None with a path src rewrites src in place,
         atomically (a failure leaves it byte-identical).
    mode: "dynamic" (int8 MatMul/Gemm weights, activations quantized at run time) or
        "static" (QuantizeLinear/DequantizeLinear with calibrated ranges; also Conv).
    calibration: an .npz path or a dict {input name: array, samples along axis 0} (cut into
        batches of batch_size); a list of feed dicts {input name: array}; a function returning
        a fresh iterable of feed dicts (called once per pass over the data, so nothing is kept
        in memory); or any other iterable of feed dicts (kept in memory: Kerf reads the data
        once per pass, calibration then evaluation). Required by static mode, auto_tolerance
        and smooth_quant; with dynamic mode it adds SQNR and agreement to the report.
    method: static calibration, "minmax", "percentile" (|x| clipped at `percentile`) or
        "entropy" (KL-optimal clipping).
    per_channel: one weight scale per output channel (else per tensor).
    exclude: weight names, node names or op types to keep in float.
    auto_tolerance: keep the worst-SQNR nodes in float until the relative L2 error of the
        float outputs against the float model is at most this.
    activation_type: "uint8" (U8S8, the fast form on x86) or "int8" (S8S8).
    op_types: op types to quantize (default Conv, MatMul, Gemm).
    quantize_embeddings: store constant Gather tables (embeddings) as int8, one scale per table:
        True always, False never, None (default) where a table is read by Gathers only and its
        int8 form's SQNR is at least 30 dB (report.float says why others stay float).
    smooth_quant: alpha in [0, 1] to apply SmoothQuant before quantizing (transformers).
    progress: None, True (a progress bar on stderr: tqdm's when tqdm is installed) or a
      callable(done, total, message); a callable returning False cancels.
    validation: data in any form `calibration` takes, to measure the report's agreement with
        the float model on instead of the calibration data (report.agreement["data"] says
        which was used).
    """
    options, keep, adapter = quantize_options(
        mode=mode, method=method, per_channel=per_channel, exclude=exclude, auto_tolerance=auto_tolerance, progress=progress,
        percentile=percentile, activation_type=activation_type, op_types=op_types, quantize_embeddings=quantize_embeddings,
        smooth_quant=smooth_quant, threads=threads)

    def run(model):
        feeders = attach_data(options, model, calibration, validation, batch_size)
        report = ctypes.c_void_p()
        status = lib.kerf_quantize(model._live_handle(), ctypes.byref(options), ctypes.byref(report))
        adapter.reraise()
        for data in feeders:
            data.reraise()
        check(status)
        return QuantizeReport.from_json(take_string(report))

    return rewrite_model(src, dst, run)


def quantize_options(*, mode="dynamic", method="minmax", per_channel=True, exclude=(), auto_tolerance=None, progress=None,
                     percentile=99.99, activation_type="uint8", op_types=None, quantize_embeddings=None, smooth_quant=None,
                     threads=None):
    """A QuantizeOptions struct from quantize's keyword arguments (without data), the ctypes
    objects it points at (keep them alive with it), and its progress adapter."""
    options = new_options(QuantizeOptions)
    options.mode = choice(mode, _MODES, "mode")
    options.method = choice(method, _METHODS, "method")
    options.activation_type = choice(activation_type, _ACTIVATIONS, "activation_type")
    try:
        options.percentile = float(percentile)
        options.auto_tolerance = -1.0 if auto_tolerance is None else float(auto_tolerance)
        options.smooth_quant_alpha = -1.0 if smooth_quant is None else float(smooth_quant)
        options.threads = 0 if threads is None else int(threads)
    except (TypeError, ValueError, OverflowError) as error:
        raise KerfError(Status.INVALID_ARGUMENT, f"invalid quantization option: {error}") from None
    if options.auto_tolerance < -1 or (auto_tolerance is not None and auto_tolerance < 0):
        raise KerfError(Status.INVALID_ARGUMENT, f"auto_tolerance must be >= 0, got {auto_tolerance}")
    if smooth_quant is not None and smooth_quant < 0:
        raise KerfError(Status.INVALID_ARGUMENT, f"smooth_quant must be in [0, 1], got {smooth_quant}")
    options.per_channel = 1 if per_channel else 0
    options.quantize_embeddings = -1 if quantize_embeddings is None else (1 if quantize_embeddings else 0)
    excluded, options.n_exclude = c_strings(exclude, "exclude")
    options.exclude = excluded
    ops, options.n_op_types = c_strings(op_types or (), "op_types")
    options.op_types = ops
    adapter = ProgressAdapter(progress, "quantize")
    options.progress = adapter.function
    return options, [excluded, ops], adapter


def attach_data(options, model, calibration, validation, batch_size):
    """Points `options` (a QuantizeOptions) at feeders of `calibration` and `validation` (None:
    none) for `model`, and returns the feeders (keep them alive; reraise() after the call)."""
    try:
        batch_size = int(batch_size)
    except (TypeError, ValueError, OverflowError) as error:
        raise KerfError(Status.INVALID_ARGUMENT, f"invalid batch_size: {error}") from None
    feeder = _Calibration(_batches(calibration, model, batch_size)) if calibration is not None else None
    options.calibration = feeder.function if feeder else CalibrationCallback()
    options.calibration_batches = (feeder.count or 0) if feeder else 0
    checker = _Calibration(_batches(validation, model, batch_size, "validation")) if validation is not None else None
    options.validation = checker.function if checker else CalibrationCallback()
    options.validation_batches = (checker.count or 0) if checker else 0
    return [data for data in (feeder, checker) if data]


def _batches(calibration, model, batch_size, what="calibration"):
    """Calibration (or validation) data as (a function returning a fresh iterator of feed dicts, batch count or None).

    Arrays are sliced lazily, lists and callables are read anew on every pass; a one-shot
    iterator (e.g. a generator) is kept in memory, since Kerf reads the data once per pass."""
    if isinstance(calibration, (str, bytes, os.PathLike)):
        with np.load(calibration) as archive:
            calibration = {key: archive[key] for key in archive.files if key != "labels"}
    if isinstance(calibration, dict):
        if not calibration:
            raise KerfError(Status.INVALID_ARGUMENT, f"{what} data is empty")
        if batch_size <= 0:
            raise KerfError(Status.INVALID_ARGUMENT, f"batch_size must be positive, got {batch_size}")
        arrays = {name: np.asarray(value) for name, value in calibration.items()}
        counts = {a.shape[0] if a.ndim else 1 for a in arrays.values()}
        if len(counts) != 1 or any(a.ndim == 0 for a in arrays.values()):
            raise KerfError(Status.INVALID_ARGUMENT,
                            f"{what} arrays must share their first (sample) dimension, got "
                            f"{ {k: a.shape for k, a in arrays.items()} }")
        samples = counts.pop()
        fixed = {i.shape[0] for i in model.inputs if i.shape and isinstance(i.shape[0], int)}
        step = fixed.pop() if len(fixed) == 1 else batch_size
        starts = range(0, samples, step)
        return (lambda: ({k: a[i:i + step] for k, a in arrays.items()} for i in starts)), len(starts)
    if callable(calibration):
        return calibration, None
    if isinstance(calibration, (list, tuple)):
        return (lambda: iter(calibration)), len(calibration)
    try:
        kept = list(calibration)
    except TypeError:
        raise KerfError(Status.INVALID_ARGUMENT,
                        f"{what} must be an .npz path, a dict of arrays, a list or iterable of feed dicts, "
                        "or a function returning such an iterable") from None
    return (lambda: iter(kept)), len(kept)


class _Calibration:
    """Feeds as a kerf_calibration_fn: batch 0 starts a new pass (a fresh iterator), later
    indices continue it. An exception inside is re-raised by reraise()."""

    def __init__(self, source):
        self.start, self.count = source
        self.batches = None
        self.next_index = 0
        self.error = None
        self.function = CalibrationCallback(self._call)

    def _call(self, _user, index, names, count, inputs):
        try:
            if index == 0:
                self.batches = iter(self.start())
            elif index != self.next_index or self.batches is None:
                raise KerfError(Status.INTERNAL, f"calibration batch {index} asked out of order")
            self.next_index = index + 1
            feed = next(self.batches, None)
            if feed is None:
                return 0
            feed = dict(feed)
            for k in range(count):
                name = names[k].decode("utf-8")
                if name not in feed:
                    raise KerfError(Status.INVALID_ARGUMENT, f"calibration batch {index} has no input {name!r}")
                inputs[k] = _tensor.create(_tensor.as_feed_array(name, feed[name]))
            return 1
        except BaseException as error:  # noqa: BLE001 - must not unwind through C
            self.error = error
            return -1

    def reraise(self):
        if self.error is not None:
            raise self.error
