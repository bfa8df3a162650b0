"""ONNX Runtime's quantization API (onnxruntime.quantization) over kerf.quantize: code written
for it runs with `from kerf.quantization import ...`. What maps and what does not: see
kerf.quantization.quantize."""

from .calibrate import CalibrationDataReader, CalibrationMethod
from .quant_utils import QuantFormat, QuantType
from .quantize import quantize_dynamic, quantize_static

__all__ = ["CalibrationDataReader", "CalibrationMethod", "QuantFormat", "QuantType", "quantize_dynamic",
           "quantize_static"]
