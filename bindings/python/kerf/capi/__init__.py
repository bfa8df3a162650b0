"""Mirrors onnxruntime.capi for code that imports ONNX Runtime's exception classes from
onnxruntime.capi.onnxruntime_pybind11_state: the same import works from kerf.capi."""
