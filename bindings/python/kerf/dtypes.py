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
    BFLOAT16 = 16  # numpy has no bfloat16


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
_FROM_NUMPY = {dtype: code for code, dtype in _TO_NUMPY.items()}


def to_numpy(code):
    """The numpy dtype of a kerf_dtype code, or None when numpy has none
    (UNDEFINED, STRING, BFLOAT16, codes newer than this binding)."""
    try:
        return _TO_NUMPY.get(DType(code))
    except ValueError:
        return None


def from_numpy(dtype):
    """The DType of a native-byte-order numpy dtype, or None if Kerf has none."""
    return _FROM_NUMPY.get(np.dtype(dtype))


def name(code):
    try:
        return DType(code).name.lower()
    except ValueError:
        return f"dtype {code}"
