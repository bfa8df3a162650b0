"""Indexing, scatter, cumulative, triangle, modulo and element-test ops (GatherElements,
GatherND, ScatterElements/Scatter, ScatterND, CumSum, Trilu, Mod, Sign, Round, IsNaN, IsInf,
NonZero, OneHot) against ONNX Runtime on random inputs with negative indices, and bad
inputs that must raise KerfError instead of crashing the process."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import kerf
import models
from kerf import KerfError, Status

F, D, I32, I64, B = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL
rng = np.random.default_rng(11)


def normal(*shape, dtype=np.float32):
    return rng.normal(0, 2, shape).astype(dtype)


def ints(low, high, *shape, dtype=np.int64):
    return rng.integers(low, high, shape).astype(dtype)


def unique_rows(size, count, rows, dtype=np.int64):
    """`rows` rows of `count` distinct indices in [-size, size) (each position named once)."""
    picks = [rng.permutation(size)[:count] for _ in range(rows)]
    return np.array([[p - size if rng.random() < 0.5 else p for p in row] for row in picks], dtype)


def unique_tuples(shape, count):
    """`count` distinct index tuples into `shape`, some written negative: int64 [count, len(shape)]."""
    flat = rng.permutation(int(np.prod(shape)))[:count]
    tuples = np.stack(np.unravel_index(flat, shape), axis=-1).astype(np.int64)
    negative = rng.random(tuples.shape) < 0.5
    return np.where(negative, tuples - np.array(shape), tuples)


X = normal(3, 4, 5)
SPECIAL = np.array([0.0, -0.0, 1.5, -2.5, 0.5, 2.5, -0.5, np.nan, np.inf, -np.inf, 3.7, -3.2], np.float32)

# (id, opset, op, {input name: array, "@name": initializer}, attributes, outputs (name, elem type))
CASES = [
    ("gatherelements-axis1", 13, "GatherElements", {"x": X, "i": ints(-4, 4, 3, 6, 5)}, {"axis": 1}, [("y", F)]),
    ("gatherelements-smaller", 11, "GatherElements", {"x": X, "i": ints(-3, 3, 2, 4, 3)}, {"axis": 0}, [("y", F)]),
    ("gatherelements-int32", 13, "GatherElements", {"x": ints(-9, 9, 4, 6, dtype=np.int32), "i": ints(-6, 6, 4, 2, dtype=np.int32)},
     {"axis": -1}, [("y", I32)]),
    ("gathernd", 13, "GatherND", {"x": X, "i": ints(-3, 3, 2, 3, 1)}, {}, [("y", F)]),
    ("gathernd-elements", 11, "GatherND", {"x": X, "i": unique_tuples((3, 4, 5), 7)}, {}, [("y", F)]),
    ("gathernd-batch", 12, "GatherND", {"x": ints(-50, 50, 3, 4, 5), "i": ints(-4, 4, 3, 2, 1)}, {"batch_dims": 1}, [("y", I64)]),
    ("gathernd-batch2", 13, "GatherND", {"x": X, "i": ints(-5, 5, 3, 4, 1)}, {"batch_dims": 2}, [("y", F)]),
    ("scatternd", 11, "ScatterND", {"x": X, "i": unique_tuples((3, 4), 5), "u": normal(5, 5)}, {}, [("y", F)]),
    ("scatternd-add", 16, "ScatterND", {"x": X, "i": ints(-3, 3, 6, 1), "u": normal(6, 4, 5)}, {"reduction": "add"}, [("y", F)]),
    ("scatternd-mul", 16, "ScatterND", {"x": X, "i": ints(-3, 3, 4, 2), "u": normal(4, 5)}, {"reduction": "mul"}, [("y", F)]),
    ("scatternd-max", 18, "ScatterND", {"x": X, "i": ints(-3, 3, 9, 3), "u": normal(9)}, {"reduction": "max"}, [("y", F)]),
    ("scatternd-min-int", 18, "ScatterND", {"x": ints(-9, 9, 6, 3), "i": ints(-6, 6, 8, 1), "u": ints(-9, 9, 8, 3)},
     {"reduction": "min"}, [("y", I64)]),
    ("scatterelements", 13, "ScatterElements", {"x": X[0], "i": unique_rows(5, 3, 4), "u": normal(4, 3)}, {"axis": 1}, [("y", F)]),
    ("scatterelements-axis0", 11, "ScatterElements", {"x": X[0], "i": unique_rows(4, 2, 5).T.copy(), "u": normal(2, 5)}, {}, [("y", F)]),
    ("scatterelements-add", 16, "ScatterElements", {"x": X, "i": ints(-4, 4, 3, 7, 5), "u": normal(3, 7, 5)},
     {"axis": -2, "reduction": "add"}, [("y", F)]),
    ("scatterelements-mul", 16, "ScatterElements", {"x": X[0], "i": ints(-5, 5, 4, 3), "u": normal(4, 3)},
     {"axis": 1, "reduction": "mul"}, [("y", F)]),
    ("scatterelements-max-int", 18, "ScatterElements", {"x": ints(-9, 9, 4, 5, dtype=np.int32), "i": ints(-4, 4, 6, 5),
     "u": ints(-20, 20, 6, 5, dtype=np.int32)}, {"reduction": "max"}, [("y", I32)]),
    ("scatterelements-min", 18, "ScatterElements", {"x": X[0], "i": ints(-5, 5, 4, 8), "u": normal(4, 8)},
     {"axis": 1, "reduction": "min"}, [("y", F)]),
    ("scatter-9", 9, "Scatter", {"x": X[0], "i": unique_rows(5, 2, 4), "u": normal(4, 2)}, {"axis": 1}, [("y", F)]),
    ("cumsum", 14, "CumSum", {"x": X, "@a": np.int64(1)}, {}, [("y", F)]),
    ("cumsum-exclusive-reverse", 11, "CumSum", {"x": X, "@a": np.int32(-1)}, {"exclusive": 1, "reverse": 1}, [("y", F)]),
    ("cumsum-int64", 14, "CumSum", {"x": ints(-100, 100, 4, 6), "a": np.array([0], np.int64)}, {"exclusive": 1}, [("y", I64)]),
    ("cumsum-double-reverse", 14, "CumSum", {"x": normal(5, 3, dtype=np.float64), "@a": np.int64(0)}, {"reverse": 1}, [("y", D)]),
    ("trilu-upper", 14, "Trilu", {"x": X}, {}, [("y", F)]),
    ("trilu-upper-k", 14, "Trilu", {"x": X, "k": np.array(2, np.int64)}, {}, [("y", F)]),
    ("trilu-lower-negative-k", 14, "Trilu", {"x": X, "@k": np.int64(-1)}, {"upper": 0}, [("y", F)]),
    ("trilu-lower-int64", 14, "Trilu", {"x": ints(1, 9, 2, 5, 3), "@k": np.int64(1)}, {"upper": 0}, [("y", I64)]),
    ("trilu-k-beyond", 14, "Trilu", {"x": X, "@k": np.int64(-9)}, {}, [("y", F)]),
    ("mod-int32-broadcast", 13, "Mod", {"a": ints(-50, 50, 3, 4, dtype=np.int32), "b": np.array([3, -7, 5, -2], np.int32)}, {},
     [("y", I32)]),
    ("mod-int64", 10, "Mod", {"a": ints(-1000, 1000, 20), "b": np.where(ints(0, 2, 20) == 0, -1, 1) * ints(1, 30, 20)}, {},
     [("y", I64)]),
    ("mod-int64-fmod", 13, "Mod", {"a": ints(-1000, 1000, 20), "b": ints(1, 30, 20) * -1}, {"fmod": 1}, [("y", I64)]),
    ("mod-float-fmod", 13, "Mod", {"a": normal(4, 5) * 10, "b": normal(5)}, {"fmod": 1}, [("y", F)]),
    ("mod-double-fmod", 13, "Mod", {"a": normal(6, dtype=np.float64) * 10, "b": normal(6, dtype=np.float64)}, {"fmod": 1},
     [("y", D)]),
    ("sign-float", 13, "Sign", {"x": SPECIAL}, {}, [("y", F)]),
    ("sign-int32", 13, "Sign", {"x": ints(-3, 4, 10, dtype=np.int32)}, {}, [("y", I32)]),
    ("sign-int64", 9, "Sign", {"x": ints(-3, 4, 10)}, {}, [("y", I64)]),
    ("round-float", 11, "Round", {"x": np.concatenate([SPECIAL, normal(20) * 3])}, {}, [("y", F)]),
    ("round-double", 22, "Round", {"x": np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, -7.5, 1e300], np.float64)}, {}, [("y", D)]),
    ("isnan", 13, "IsNaN", {"x": SPECIAL}, {}, [("y", B)]),
    ("isnan-double", 20, "IsNaN", {"x": SPECIAL.astype(np.float64)}, {}, [("y", B)]),
    ("isinf", 10, "IsInf", {"x": SPECIAL}, {}, [("y", B)]),
    ("isinf-positive", 20, "IsInf", {"x": SPECIAL}, {"detect_negative": 0}, [("y", B)]),
    ("isinf-negative-double", 20, "IsInf", {"x": SPECIAL.astype(np.float64)}, {"detect_positive": 0}, [("y", B)]),
    ("nonzero-float", 13, "NonZero", {"x": np.where(rng.random((3, 4, 5)) < 0.6, 0, X).astype(np.float32)}, {}, [("y", I64)]),
    ("nonzero-negative-zero", 13, "NonZero", {"x": SPECIAL}, {}, [("y", I64)]),
    ("nonzero-int32", 9, "NonZero", {"x": ints(-1, 2, 4, 6, dtype=np.int32)}, {}, [("y", I64)]),
    ("nonzero-bool", 13, "NonZero", {"x": rng.random((2, 3, 2)) < 0.5}, {}, [("y", I64)]),
    ("onehot", 11, "OneHot", {"i": ints(-7, 7, 3, 4), "@d": np.float32(5), "@v": np.array([-1, 3], np.float32)}, {}, [("y", F)]),
    ("onehot-axis0", 11, "OneHot", {"i": ints(-5, 5, 3, 4), "d": np.array([4], np.float32), "@v": np.array([0, 1], np.int32)},
     {"axis": 0}, [("y", I32)]),
    ("onehot-axis-middle", 11, "OneHot", {"i": ints(-6, 6, 2, 3, dtype=np.int32), "@d": np.float32(6),
     "@v": np.array([2, 7], np.float32)}, {"axis": -2}, [("y", F)]),
    ("onehot-int64", 11, "OneHot", {"i": ints(-6, 6, 5), "@d": np.int64(4), "@v": np.array([2, 7], np.int64)}, {"axis": 0},
     [("y", I64)]),
    ("onehot-float-indices", 9, "OneHot", {"i": np.array([0.0, 2.7, -1.2, 9.0], np.float32), "@d": np.float32(3),
     "@v": np.array([0, 1], np.float32)}, {}, [("y", F)]),
    # Where with an attention mask [1, 1, S, S] over scores and a scalar fill (no copies made),
    # either side, and a condition of lower rank; then the general broadcast.
    ("where-mask-scalar-y", 9, "Where", {"c": rng.random((1, 1, 4, 5)) < 0.5, "x": normal(2, 3, 4, 5), "@y": np.float32(-1e9)}, {},
     [("z", F)]),
    ("where-mask-scalar-x", 16, "Where", {"c": rng.random((4, 5)) < 0.5, "@x": np.float32(7), "y": normal(2, 3, 4, 5)}, {}, [("z", F)]),
    ("where-mask-int64", 16, "Where", {"c": rng.random((1, 5)) < 0.5, "x": ints(-9, 9, 3, 5), "y": ints(-9, 9, 3, 5)}, {}, [("z", I64)]),
    ("where-general-broadcast", 16, "Where", {"c": rng.random((3, 1)) < 0.5, "x": normal(1, 5), "y": normal(3, 5)}, {}, [("z", F)]),
    # Pow by 3 (tanh-GELU's cube) as multiplications; Tanh in its rational form (NaN, infinities,
    # tiny and saturating inputs).
    ("pow-cube", 13, "Pow", {"x": normal(4, 6) * 3, "@e": np.float32(3)}, {}, [("y", F)]),
    ("tanh", 13, "Tanh", {"x": np.concatenate([SPECIAL, normal(200) * 3, np.float32([1e-5, -3e-4, 4e-4, 8.5, -30])])}, {},
     [("y", F)]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_onnxruntime(case):
    _, opset, op, inputs, attrs, outputs = case
    models.check_single_op(opset, op, inputs, attrs, outputs)


run_kerf = models.run_single_op


def test_mod_integer_division_by_zero_gives_zero():
    a = np.array([7, -7, np.iinfo(np.int64).min, 5], np.int64)
    b = np.array([0, 0, -1, -1], np.int64)
    for fmod in (0, 1):
        got = run_kerf(13, "Mod", {"a": a, "b": b}, {"fmod": fmod}, [("y", I64)])["y"]
        np.testing.assert_array_equal(got, [0, 0, 0, 0])


def test_nonzero_of_a_scalar_has_no_rows():
    got = run_kerf(13, "NonZero", {"x": np.array(3.0, np.float32)}, {}, [("y", I64)])["y"]
    assert got.shape == (0, 1)


# Bad inputs: each raises KerfError with the status and a message naming the problem.

BAD = [
    ("gatherelements-index", 13, "GatherElements", {"x": X, "i": np.full((3, 1, 5), 4, np.int64)}, {"axis": 1},
     Status.INVALID_ARGUMENT, "out of range"),
    ("gatherelements-rank", 13, "GatherElements", {"x": X, "i": np.zeros((3, 4), np.int64)}, {},
     Status.SHAPE_MISMATCH, "same rank"),
    ("gathernd-index", 13, "GatherND", {"x": X, "i": np.array([[0, -5]], np.int64)}, {},
     Status.INVALID_ARGUMENT, "out of range"),
    ("gathernd-tuple", 13, "GatherND", {"x": X, "i": np.zeros((2, 4), np.int64)}, {},
     Status.SHAPE_MISMATCH, "tuples of length 4"),
    ("scatternd-index", 16, "ScatterND", {"x": X, "i": np.array([[3]], np.int64), "u": normal(1, 4, 5)}, {"reduction": "add"},
     Status.INVALID_ARGUMENT, "out of range"),
    ("scatternd-updates", 13, "ScatterND", {"x": X, "i": np.array([[1]], np.int64), "u": normal(1, 5, 4)}, {},
     Status.SHAPE_MISMATCH, "updates"),
    ("scatterelements-index", 13, "ScatterElements", {"x": X[0], "i": np.array([[-5]], np.int64), "u": normal(1, 1)}, {},
     Status.INVALID_ARGUMENT, "out of range"),
    ("scatterelements-indices-too-big", 13, "ScatterElements", {"x": X[0], "i": np.zeros((2, 6), np.int64), "u": normal(2, 6)}, {},
     Status.SHAPE_MISMATCH, "exceed"),
    ("cumsum-axis", 14, "CumSum", {"x": X, "a": np.array(3, np.int64)}, {}, Status.INVALID_ARGUMENT, "axis"),
    ("trilu-rank", 14, "Trilu", {"x": normal(5)}, {}, Status.INVALID_ARGUMENT, "rank >= 2"),
    ("onehot-values", 11, "OneHot", {"i": ints(0, 3, 4), "d": np.array(3, np.int64), "v": np.zeros(3, np.float32)}, {},
     Status.INVALID_ARGUMENT, "off_value"),
    ("onehot-depth", 11, "OneHot", {"i": ints(0, 3, 4), "d": np.array(-2, np.int64), "v": np.zeros(2, np.float32)}, {},
     Status.INVALID_ARGUMENT, "depth"),
    ("mod-dtypes", 13, "Mod", {"a": ints(1, 5, 3), "b": ints(1, 5, 3, dtype=np.int32)}, {}, Status.SHAPE_MISMATCH, "dtypes"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_raises(case):
    _, opset, op, inputs, attrs, status, words = case
    models.check_single_op_raises(opset, op, inputs, attrs, status, words)


def test_scatter_reduction_unknown_to_the_opset_is_refused():
    model = models.single_op_model(16, "ScatterND", {"x": X, "i": np.array([[1]], np.int64), "u": normal(1, 4, 5)},
                                   {"reduction": "max"}, [("y", F)])
    with pytest.raises(KerfError) as failure:
        with kerf.load_bytes(model.SerializeToString()) as m:
            m.session().close()
    assert failure.value.status == Status.INVALID_MODEL
    assert "reduction 'max'" in failure.value.message
