"""quantize_dynamic and quantize_static with ONNX Runtime's signatures and defaults, over
kerf.quantize. Both write model_output and return kerf.quantize's Report (ONNX Runtime's return
None).

What maps: per_channel; op_types_to_quantize (None: Conv, MatMul and Gemm; "Gather" also stores
constant embedding tables as int8); nodes_to_exclude; nodes_to_quantize (every other named node
is excluded); activation_type QUInt8/QInt8; calibrate_method MinMax, Entropy, Percentile;
extra_options CalibPercentile (default 99.999, as ONNX Runtime), SmoothQuant and
SmoothQuantAlpha (default 0.5). Enum members of onnxruntime.quantization are accepted too.

Warned and ignored: weight_type=QUInt8 (Kerf's weights are int8, symmetric), reduce_range (the
full int8 range is used), use_external_data_format (Kerf writes a data file beside the output
when the source model's weights were in one), calibration_providers other than the CPU, other
extra_options keys.

NotImplementedError: quant_format=QOperator, 16-bit, 4-bit and float8 types,
CalibrationMethod.Distribution, calibration_cache_path.

Kerf's dynamic mode keeps Conv in float (ONNX Runtime's writes ConvInteger)."""

import os
import warnings

from .._onnx_header import node_names
from ..capi.onnxruntime_pybind11_state import raising_ort_errors
from ..model import load, load_bytes
from ..quantize import quantize as _kerf_quantize
from .calibrate import CalibrationMethod
from .quant_utils import QuantFormat, QuantType

_ACTIVATIONS = {"QUInt8": "uint8", "QInt8": "int8"}
_METHODS = {"MinMax": "minmax", "Entropy": "entropy", "Percentile": "percentile"}
_EXTRA_OPTIONS = {"CalibPercentile", "SmoothQuant", "SmoothQuantAlpha"}


def quantize_dynamic(model_input, model_output, op_types_to_quantize=None, per_channel=False, reduce_range=False,
                     weight_type=QuantType.QInt8, nodes_to_quantize=None, nodes_to_exclude=None,
                     use_external_data_format=False, extra_options=None):
    """Int8 weights for MatMul/Gemm, activations quantized at run time. model_input: a path or
    an onnx.ModelProto; model_output: a path."""
    _check_weight_type(weight_type)
    return _quantize(model_input, model_output, "dynamic", op_types_to_quantize, per_channel, reduce_range,
                     nodes_to_quantize, nodes_to_exclude, use_external_data_format, extra_options or {})


def quantize_static(model_input, model_output, calibration_data_reader=None, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=None, per_channel=False, reduce_range=False, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, nodes_to_quantize=None, nodes_to_exclude=None,
                    use_external_data_format=False, calibrate_method=CalibrationMethod.MinMax,
                    calibration_providers=None, extra_options=None, calibration_cache_path=None):
    """QuantizeLinear/DequantizeLinear pairs with activation ranges calibrated on the feeds of
    calibration_data_reader (anything with get_next(), read until it returns None)."""
    if _name(quant_format) != "QDQ":
        raise NotImplementedError(f"quant_format={quant_format}: Kerf writes QDQ files only (QuantFormat.QDQ)")
    if calibration_cache_path is not None:
        raise NotImplementedError("calibration_cache_path: Kerf keeps no calibration cache")
    if calibration_data_reader is None:
        raise ValueError("quantize_static needs a calibration_data_reader")
    _check_weight_type(weight_type)
    activation = _lookup(activation_type, _ACTIVATIONS, "activation_type")
    method = _lookup(calibrate_method, _METHODS, "calibrate_method")
    for provider in calibration_providers or ():
        if provider != "CPUExecutionProvider":
            warnings.warn(f"calibration provider {provider!r} is ignored: Kerf calibrates on the CPU", stacklevel=2)
    extra_options = extra_options or {}
    calibration = []
    while (feed := calibration_data_reader.get_next()) is not None:
        calibration.append(feed)
    return _quantize(model_input, model_output, "static", op_types_to_quantize, per_channel, reduce_range,
                     nodes_to_quantize, nodes_to_exclude, use_external_data_format, extra_options,
                     calibration=calibration, method=method, activation_type=activation,
                     percentile=float(extra_options.get("CalibPercentile", 99.999)))


def _quantize(model_input, model_output, mode, op_types, per_channel, reduce_range, nodes_to_quantize,
              nodes_to_exclude, use_external_data_format, extra_options, **options):
    """kerf.quantize of model_input (a path or a ModelProto) to model_output with the options
    both functions share mapped, errors raised as ONNX Runtime's classes."""
    ignored = sorted(set(extra_options) - _EXTRA_OPTIONS)
    if reduce_range:
        ignored.append("reduce_range")
    if use_external_data_format:
        ignored.append("use_external_data_format")
    if ignored:
        warnings.warn(f"ignored by Kerf: {', '.join(ignored)}", stacklevel=3)
    if extra_options.get("SmoothQuant"):
        options["smooth_quant"] = float(extra_options.get("SmoothQuantAlpha", 0.5))
    if op_types:  # None or [] (ONNX Runtime's "all supported"): Kerf's default op types
        options["op_types"] = list(op_types)
        options["quantize_embeddings"] = "Gather" in options["op_types"]
    exclude = list(nodes_to_exclude or ())
    data = model_input.SerializeToString() if hasattr(model_input, "SerializeToString") else os.fspath(model_input)
    with raising_ort_errors(), (load_bytes if isinstance(data, bytes) else load)(data) as model:
        if nodes_to_quantize:
            chosen = set(nodes_to_quantize)
            exclude += [name for name in node_names(data) if name and name not in chosen]
        return _kerf_quantize(model, os.fspath(model_output), mode=mode, per_channel=bool(per_channel),
                              exclude=exclude, **options)


def _check_weight_type(weight_type):
    name = _name(weight_type)
    if name == "QUInt8":
        warnings.warn("weight_type=QUInt8: Kerf stores weights as int8 (QInt8, symmetric)", stacklevel=3)
    elif name != "QInt8":
        raise NotImplementedError(f"weight_type={weight_type}: Kerf quantizes weights to int8 only")


def _lookup(value, table, what):
    name = _name(value)
    if name not in table:
        raise NotImplementedError(f"{what}={value}: Kerf supports {', '.join(table)}")
    return table[name]


def _name(member):
    """The member name of an enum value from this package or onnxruntime.quantization."""
    return getattr(member, "name", str(member))
