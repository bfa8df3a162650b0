"""Trigonometric and hyperbolic functions and the remaining activations (Celu, Softsign,
ThresholdedRelu, Mish, Swish, Shrink) on inputs inside each function's domain: float32 against
ONNX Runtime, float64 against numpy (ONNX Runtime has no float64 kernels for most of them); a
non-float input raises KerfError."""

import numpy as np
import pytest
from onnx import TensorProto

from models import check_single_op, check_single_op_raises, run_single_op
from kerf import Status

# op, attributes, input range (inside the domain), opset
CASES = [
    ("Sin", {}, (-6, 6), 18), ("Cos", {}, (-6, 6), 18), ("Tan", {}, (-1.4, 1.4), 18),
    ("Asin", {}, (-1, 1), 18), ("Acos", {}, (-1, 1), 18), ("Atan", {}, (-20, 20), 18),
    ("Sinh", {}, (-5, 5), 18), ("Cosh", {}, (-5, 5), 18), ("Asinh", {}, (-20, 20), 18),
    ("Acosh", {}, (1, 20), 18), ("Atanh", {}, (-0.99, 0.99), 18),
    ("Celu", {"alpha": 0.7}, (-6, 6), 18), ("Softsign", {}, (-20, 20), 18),
    ("ThresholdedRelu", {"alpha": 0.5}, (-3, 3), 18), ("Mish", {}, (-20, 20), 18),
    ("Swish", {"alpha": 1.5}, (-20, 20), 24), ("Shrink", {"bias": 0.3, "lambd": 0.8}, (-3, 3), 18),
]



def softplus(x):
    return np.logaddexp(0, x)


# The ONNX definitions, in numpy.
REFERENCE = {
    "Sin": lambda x, a: np.sin(x), "Cos": lambda x, a: np.cos(x), "Tan": lambda x, a: np.tan(x),
    "Asin": lambda x, a: np.arcsin(x), "Acos": lambda x, a: np.arccos(x), "Atan": lambda x, a: np.arctan(x),
    "Sinh": lambda x, a: np.sinh(x), "Cosh": lambda x, a: np.cosh(x), "Asinh": lambda x, a: np.arcsinh(x),
    "Acosh": lambda x, a: np.arccosh(x), "Atanh": lambda x, a: np.arctanh(x),
    "Celu": lambda x, a: np.maximum(0, x) + np.minimum(0, a["alpha"] * (np.exp(x / a["alpha"]) - 1)),
    "Softsign": lambda x, a: x / (1 + np.abs(x)),
    "ThresholdedRelu": lambda x, a: np.where(x > a["alpha"], x, 0),
    "Mish": lambda x, a: x * np.tanh(softplus(x)),
    "Swish": lambda x, a: x / (1 + np.exp(-a["alpha"] * x)),
    "Shrink": lambda x, a: np.where(x < -a["lambd"], x + a["bias"], np.where(x > a["lambd"], x - a["bias"], 0)),
}


def sample(op, bounds, dtype):
    return np.random.default_rng(len(op)).uniform(*bounds, (3, 17)).astype(dtype)


@pytest.mark.parametrize("op, attrs, bounds, opset", CASES, ids=[c[0] for c in CASES])
def test_float32_matches_onnxruntime(op, attrs, bounds, opset):
    check_single_op(opset, op, {"x": sample(op, bounds, np.float32)}, attrs, [("y", TensorProto.FLOAT)], rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("op, attrs, bounds, opset", CASES, ids=[c[0] for c in CASES])
def test_float64_matches_the_definition(op, attrs, bounds, opset):
    x = sample(op, bounds, np.float64)
    y = run_single_op(opset, op, {"x": x}, attrs, [("y", TensorProto.DOUBLE)])["y"]
    assert y.dtype == np.float64 and y.shape == x.shape
    stored = {k: float(np.float32(v)) for k, v in attrs.items()}  # float attributes are float32 in ONNX
    np.testing.assert_allclose(y, REFERENCE[op](x, stored), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["Sin", "Mish"])
def test_integer_input_is_refused(op):
    check_single_op_raises(18, op, {"x": np.arange(6, dtype=np.int32).reshape(2, 3)}, {}, Status.UNSUPPORTED, "float types only")
