"""Classification losses, bitwise and window ops (SoftmaxCrossEntropyLoss, NegativeLogLikelihoodLoss,
BitShift, BitwiseAnd/Or/Xor/Not, CumProd, Hardmax, LpNormalization, ReduceLogSum, LpPool,
GlobalLpPool, BitCast) against ONNX Runtime on random inputs (rtol 1e-5, atol 1e-6 unless a case
states its own), or against numpy where ONNX Runtime lacks the op's opset; and bad inputs that
must raise KerfError instead of crashing the process."""

import numpy as np
import pytest
from onnx import TensorProto

import models
from kerf import Status

F, D, I32, I64 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT32, TensorProto.INT64
U8, U16, U32, U64, I8, I16 = TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64, TensorProto.INT8, TensorProto.INT16
rng = np.random.default_rng(29)


def normal(*shape, dtype=np.float32):
    return rng.normal(0, 2, shape).astype(dtype)


def ints(low, high, *shape, dtype=np.int64):
    return rng.integers(low, high, shape).astype(dtype)


def labels_with(ignored, *shape, classes=5):
    """Labels in [0, classes) with about a quarter set to `ignored`."""
    t = ints(0, classes, *shape)
    return np.where(rng.random(shape) < 0.25, ignored, t).astype(np.int64)


SCORES = normal(4, 5, 3, 2)  # [N, C, d1, d2]
WEIGHT = rng.uniform(0.2, 2, 5).astype(np.float32)

# (id, opset, op, {input name: array, "@name": initializer}, attributes, outputs (name, elem type)[, rtol, atol])
CASES = [
    ("sce-mean", 13, "SoftmaxCrossEntropyLoss", {"x": normal(6, 5), "t": ints(0, 5, 6)}, {}, [("loss", F)]),
    ("sce-none-log-prob", 13, "SoftmaxCrossEntropyLoss", {"x": SCORES, "t": ints(0, 5, 4, 3, 2)}, {"reduction": "none"},
     [("loss", F), ("log_prob", F)]),
    ("sce-sum-weight-ii", 13, "SoftmaxCrossEntropyLoss", {"x": SCORES, "t": labels_with(-1, 4, 3, 2), "w": WEIGHT},
     {"reduction": "sum", "ignore_index": -1}, [("loss", F)]),
    ("sce-mean-weight-ii-log-prob", 13, "SoftmaxCrossEntropyLoss", {"x": SCORES, "t": labels_with(2, 4, 3, 2), "w": WEIGHT},
     {"ignore_index": 2}, [("loss", F), ("log_prob", F)]),
    ("sce-mean-ii-int32", 13, "SoftmaxCrossEntropyLoss", {"x": normal(3, 5, 7), "t": labels_with(0, 3, 7).astype(np.int32)},
     {"ignore_index": 0}, [("loss", F)]),
    ("nll-mean", 13, "NegativeLogLikelihoodLoss", {"x": normal(6, 5), "t": ints(0, 5, 6)}, {}, [("loss", F)]),
    ("nll-none-weight", 13, "NegativeLogLikelihoodLoss", {"x": SCORES, "t": ints(0, 5, 4, 3, 2), "w": WEIGHT},
     {"reduction": "none"}, [("loss", F)]),
    ("nll-mean-weight-ii", 22, "NegativeLogLikelihoodLoss", {"x": SCORES, "t": labels_with(4, 4, 3, 2), "w": WEIGHT},
     {"ignore_index": 4}, [("loss", F)]),
    ("nll-sum-double", 13, "NegativeLogLikelihoodLoss", {"x": normal(4, 5, 6, dtype=np.float64), "t": ints(0, 5, 4, 6)},
     {"reduction": "sum"}, [("loss", D)]),
    ("bitshift-left-uint8", 11, "BitShift", {"x": ints(0, 256, 3, 4, dtype=np.uint8), "s": ints(0, 8, 4, dtype=np.uint8)},
     {"direction": "LEFT"}, [("y", U8)]),
    ("bitshift-right-uint32", 11, "BitShift", {"x": ints(0, 2**32, 5, dtype=np.uint32), "s": ints(0, 32, 5, dtype=np.uint32)},
     {"direction": "RIGHT"}, [("y", U32)]),
    ("bitshift-left-uint64-broadcast", 11, "BitShift", {"x": ints(0, 2**62, 2, 3, dtype=np.uint64), "@s": np.uint64(5)},
     {"direction": "LEFT"}, [("y", U64)]),
    ("bitwise-and-int32", 18, "BitwiseAnd", {"a": ints(-2**31, 2**31, 3, 4, dtype=np.int32), "b": ints(-2**31, 2**31, 4, dtype=np.int32)},
     {}, [("y", I32)]),
    ("bitwise-or-uint16", 18, "BitwiseOr", {"a": ints(0, 2**16, 2, 5, dtype=np.uint16), "b": ints(0, 2**16, 2, 1, dtype=np.uint16)},
     {}, [("y", U16)]),
    ("bitwise-xor-int64", 18, "BitwiseXor", {"a": ints(-2**62, 2**62, 6), "b": ints(-2**62, 2**62, 6)}, {}, [("y", I64)]),
    ("bitwise-not-int8", 18, "BitwiseNot", {"a": ints(-128, 128, 3, 3, dtype=np.int8)}, {}, [("y", I8)]),
    ("hardmax", 13, "Hardmax", {"x": normal(3, 4, 5)}, {"axis": 1}, [("y", F)]),
    ("hardmax-ties", 13, "Hardmax", {"x": ints(0, 3, 4, 6).astype(np.float32)}, {}, [("y", F)]),
    ("hardmax-11-coerced", 11, "Hardmax", {"x": normal(2, 3, 4)}, {"axis": 1}, [("y", F)]),
    ("lpnormalization-l2", 22, "LpNormalization", {"x": normal(3, 4, 5)}, {"axis": 1}, [("y", F)]),
    ("lpnormalization-l1", 1, "LpNormalization", {"x": normal(3, 4, 5)}, {"p": 1}, [("y", F)]),
    ("reducelogsum", 18, "ReduceLogSum", {"x": np.abs(normal(3, 4, 5)), "@a": np.array([0, 2], np.int64)}, {}, [("y", F)]),
    ("reducelogsum-13-attribute", 13, "ReduceLogSum", {"x": np.abs(normal(3, 4, 5))}, {"axes": [1], "keepdims": 0}, [("y", F)]),
    ("lppool-2d", 18, "LpPool", {"x": normal(2, 3, 7, 6)}, {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1]},
     [("y", F)], 1e-5, 1e-5),
    ("lppool-p3-dilated", 18, "LpPool", {"x": normal(1, 2, 8, 8)}, {"kernel_shape": [2, 2], "p": 3, "dilations": [2, 2]},
     [("y", F)], 1e-5, 1e-5),
    ("lppool-1d-same-upper", 18, "LpPool", {"x": normal(2, 2, 9)}, {"kernel_shape": [4], "auto_pad": "SAME_UPPER", "p": 1},
     [("y", F)], 1e-5, 1e-5),
    ("globallppool", 2, "GlobalLpPool", {"x": normal(2, 3, 4, 5)}, {}, [("y", F)], 1e-5, 1e-5),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_onnxruntime(case):
    _, opset, op, inputs, attrs, outputs, *tolerance = case
    models.check_single_op(opset, op, inputs, attrs, outputs, *tolerance)


run_kerf = models.run_single_op


# Opset-26 and -28 forms, checked against numpy.

def test_bitshift_signed_and_out_of_range_amounts():
    x = np.array([-8, 4, -1, 64, -128, 1], np.int8)
    s = np.array([1, 9, 127, -1, 7, 8], np.int8)
    left = run_kerf(28, "BitShift", {"x": x, "s": s}, {"direction": "LEFT"}, [("y", I8)])["y"]
    np.testing.assert_array_equal(left, [-16, 0, 0, 0, 0, 0])
    right = run_kerf(28, "BitShift", {"x": x, "s": s}, {"direction": "RIGHT"}, [("y", I8)])["y"]
    np.testing.assert_array_equal(right, [-4, 0, -1, 0, -1, 0])


@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumprod_matches_numpy(exclusive, reverse):
    x = rng.uniform(0.5, 1.5, (3, 4, 5)).astype(np.float32)
    got = run_kerf(26, "CumProd", {"x": x, "@a": np.int64(-2)}, {"exclusive": exclusive, "reverse": reverse}, [("y", F)])["y"]
    v = np.flip(x, 1) if reverse else x
    if exclusive:
        v = np.concatenate([np.ones_like(v[:, :1]), v[:, :-1]], axis=1)
    want = np.cumprod(v.astype(np.float64), axis=1)
    want = np.flip(want, 1) if reverse else want
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_cumprod_int32_wraps():
    x = np.array([65536, 65536, 3], np.int32)
    got = run_kerf(26, "CumProd", {"x": x, "@a": np.int32(0)}, {}, [("y", I32)])["y"]
    np.testing.assert_array_equal(got, np.cumprod(x, dtype=np.int32))


@pytest.mark.parametrize("x,to,elem", [(normal(3, 4), np.int32, I32), (ints(-2**62, 2**62, 5), np.float64, D),
                                       (ints(0, 2**16, 6, dtype=np.uint16), np.int16, I16)])
def test_bitcast_matches_numpy_view(x, to, elem):
    got = run_kerf(26, "BitCast", {"x": x}, {"to": elem}, [("y", elem)])["y"]
    np.testing.assert_array_equal(got.view(np.uint8), x.view(np.uint8).reshape(got.view(np.uint8).shape))
    assert got.dtype == to and got.shape == x.shape


# Bad inputs: each raises KerfError with the status and a message naming the problem.

BAD = [
    ("sce-label-too-big", 13, "SoftmaxCrossEntropyLoss", {"x": normal(3, 5), "t": np.array([0, 5, 1], np.int64)}, {},
     Status.INVALID_ARGUMENT, "label 5 at index 1 is outside [0, 5)"),
    ("nll-label-negative", 13, "NegativeLogLikelihoodLoss", {"x": normal(2, 4, 3), "t": np.array([[0, -1, 2], [3, 3, -7]], np.int64)},
     {"ignore_index": -1}, Status.INVALID_ARGUMENT, "label -7"),
    ("nll-label-shape", 13, "NegativeLogLikelihoodLoss", {"x": normal(2, 4, 3), "t": np.zeros((2, 4), np.int64)}, {},
     Status.SHAPE_MISMATCH, "labels must have shape [2, 3]"),
    ("sce-weight-shape", 13, "SoftmaxCrossEntropyLoss", {"x": normal(2, 4), "t": np.zeros(2, np.int64), "w": np.ones(3, np.float32)},
     {}, Status.SHAPE_MISMATCH, "weight"),
    ("sce-rank", 13, "SoftmaxCrossEntropyLoss", {"x": normal(4), "t": np.zeros(4, np.int64)}, {}, Status.SHAPE_MISMATCH, "rank >= 2"),
    ("bitwise-float", 18, "BitwiseAnd", {"a": normal(3), "b": normal(3)}, {}, Status.UNSUPPORTED, "integer types"),
    ("bitshift-dtypes", 11, "BitShift", {"x": ints(0, 9, 3, dtype=np.uint8), "s": ints(0, 9, 3, dtype=np.uint16)},
     {"direction": "LEFT"}, Status.SHAPE_MISMATCH, "dtypes"),
    ("cumprod-axis", 26, "CumProd", {"x": normal(3, 4), "a": np.array(2, np.int64)}, {}, Status.INVALID_ARGUMENT, "CumProd axis"),
    ("bitcast-size", 26, "BitCast", {"x": normal(3)}, {"to": I64}, Status.INVALID_ARGUMENT, "one element size"),
    ("hardmax-axis", 13, "Hardmax", {"x": normal(3, 4)}, {"axis": 2}, Status.INVALID_ARGUMENT, "Hardmax axis"),
    ("bitshift-direction", 11, "BitShift", {"x": ints(0, 9, 3, dtype=np.uint8), "s": ints(0, 9, 3, dtype=np.uint8)},
     {"direction": "UP"}, Status.INVALID_MODEL, "direction"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_raises(case):
    _, opset, op, inputs, attrs, status, words = case
    models.check_single_op_raises(opset, op, inputs, attrs, status, words)
