"""Output comparison with the rules of ONNX's backend test runner
(onnx.backend.test.runner.Runner.assert_similar_outputs): same count, exact
shape, exact dtype, then numpy.testing.assert_allclose semantics
(|actual - expected| <= atol + rtol * |expected|, NaN matches NaN, inf matches
the same inf)."""
from __future__ import annotations

import numpy as np

DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-7


def mismatch(expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> str | None:
    """None when `actual` matches `expected`, else a one-line description."""
    if not isinstance(actual, np.ndarray):
        return f"got {type(actual).__name__}, expected an ndarray"
    if actual.shape != expected.shape:
        return f"shape {actual.shape}, expected {expected.shape}"
    if actual.dtype != expected.dtype:
        return f"dtype {actual.dtype}, expected {expected.dtype}"
    if expected.dtype == object:  # strings
        return None if np.array_equal(actual, expected) else "strings differ"
    if expected.dtype.name == "bfloat16":  # ml_dtypes; numpy cannot compute in it
        rtol = max(rtol, 2**-6)
    if expected.dtype.kind not in "biufc":  # bfloat16, float8, int4 from ml_dtypes
        expected, actual = expected.astype(np.float32), actual.astype(np.float32)
    if expected.dtype == np.bool_:
        bad = actual != expected
    else:
        with np.errstate(all="ignore"):
            bad = ~np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    if not bad.any():
        return None
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    description = f"{int(bad.sum())} of {bad.size} elements differ"
    if expected.dtype.kind in "fc":
        with np.errstate(all="ignore"):
            errors = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        finite = errors[bad & np.isfinite(errors)]
        if finite.size:
            description += f", max abs error {finite.max():.3g}"
    return (f"{description}; first at {where}: got {actual[where]!r}, "
            f"expected {expected[where]!r} (rtol {rtol:g}, atol {atol:g})")


def outputs_mismatch(expected: list, actual: list, names: list[str], rtol: float, atol: float) -> str | None:
    """None when every output matches, else a one-line description of the first bad one."""
    if len(actual) != len(expected):
        return f"{len(actual)} outputs, expected {len(expected)}"
    for index, (want, got) in enumerate(zip(expected, actual)):
        problem = mismatch(want, got, rtol, atol)
        if problem:
            return f"output {index} '{names[index]}': {problem}"
    return None
