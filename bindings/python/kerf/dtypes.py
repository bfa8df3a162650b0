"""Element types: kerf_dtype codes (= ONNX TensorProto.DataType) <-> numpy."""

from enum import IntEnum

import numpy as np


class DType(IntEnum):
    """kerf_dtype values from kerf.h."""

    UNDEFINED = 0
    FLOAT = 1
    UINT8 = 2
    INT8 = 3
    UINT16 = 4
    INT16 = 5
    INT32 = 6
    INT64 = 7
    STRING = 8  # not usable in tensors
    BOOL = 9  # one byte per element, like numpy's bool_
    FLOAT16 = 10
    DOUBLE = 11
    UINT32 = 12
    UINT64 = 13
    BFLOAT16 = 16  # numpy has no bfloat16; mapped to ml_dtypes.bfloat16 when installed
    FLOAT8E4M3FN = 17
    FLOAT8E4M3FNUZ = 18
    FLOAT8E5M2 = 19
    FLOAT8E5M2FNUZ = 20
    UINT4 = 21  # sub-byte types: one element per byte in kerf tensors
    INT4 = 22
    FLOAT4E2M1 = 23
    FLOAT8E8M0 = 24
    UINT2 = 25
    INT2 = 26


_TO_NUMPY = {
    DType.FLOAT: np.dtype(np.float32),
    DType.UINT8: np.dtype(np.uint8),
    DType.INT8: np.dtype(np.int8),
    DType.UINT16: np.dtype(np.uint16),
    DType.INT16: np.dtype(np.int16),
    DType.INT32: np.dtype(np.int32),
    DType.INT64: np.dtype(np.int64),
    DType.BOOL: np.dtype(np.bool_),
    DType.FLOAT16: np.dtype(np.float16),
    DType.DOUBLE: np.dtype(np.float64),
    DType.UINT32: np.dtype(np.uint32),
    DType.UINT64: np.dtype(np.uint64),
}
try:  # optional: ml_dtypes (a dependency of onnx) gives numpy dtypes for the small types
    import ml_dtypes as _ml

    _TO_NUMPY.update({
        DType.BFLOAT16: np.dtype(_ml.bfloat16),
        DType.FLOAT8E4M3FN: np.dtype(_ml.float8_e4m3fn),
        DType.FLOAT8E4M3FNUZ: np.dtype(_ml.float8_e4m3fnuz),
        DType.FLOAT8E5M2: np.dtype(_ml.float8_e5m2),
        DType.FLOAT8E5M2FNUZ: np.dtype(_ml.float8_e5m2fnuz),
        DType.UINT4: np.dtype(_ml.uint4),
        DType.INT4: np.dtype(_ml.int4),
        DType.FLOAT4E2M1: np.dtype(_ml.float4_e2m1fn),
        DType.FLOAT8E8M0: np.dtype(_ml.float8_e8m0fnu),
        DType.UINT2: np.dtype(_ml.uint2),
        DType.INT2: np.dtype(_ml.int2),
    })
except ImportError:  # pragma: no cover
    pass
_FROM_NUMPY = {dtype: code for code, dtype in _TO_NUMPY.items()}
_TO_NUMPY_BY_CODE = {int(code): dtype for code, dtype in _TO_NUMPY.items()}
# Sub-byte integer types: kerf keeps one element per byte, signed ones sign-extended.
SUB_BYTE_INTEGERS = {DType.UINT4: (4, False), DType.INT4: (4, True), DType.UINT2: (2, False), DType.INT2: (2, True)}


def to_numpy(code):
    """The numpy dtype of a kerf_dtype code, or None when numpy has none
    (UNDEFINED, STRING, BFLOAT16, codes newer than this binding)."""
    return _TO_NUMPY_BY_CODE.get(int(code))


def from_numpy(dtype):
    """The DType of a native-byte-order numpy dtype, or None if Kerf has none."""
    return _FROM_NUMPY.get(np.dtype(dtype))


def name(code):
    try:
        return DType(code).name.lower()
    except ValueError:
        return f"dtype {code}"
