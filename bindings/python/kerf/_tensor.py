"""Copying numpy arrays into kerf tensors and kerf tensors out into numpy."""

import ctypes

import numpy as np

from . import dtypes
from ._bindings import TensorP, check, lib
from .errors import KerfError, Status


def as_feed_array(name, value, declared=None):
    """`value` as a C-contiguous, native-byte-order array Kerf accepts.

    Arrays (and numpy scalars) keep their dtype; other array-likes (lists,
    Python numbers) take the input's declared dtype when it is known."""
    # np.asarray(order="C") rather than np.ascontiguousarray, which turns
    # 0-d arrays (scalars) into shape (1,).
    if isinstance(value, (np.ndarray, np.generic)) or declared is None:
        declared = None
    try:
        array = np.asarray(value, dtype=declared, order="C")
    except (TypeError, ValueError) as error:
        raise KerfError(Status.INVALID_ARGUMENT,
                        f"feed '{name}' cannot be converted to an array: {error}") from None
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if dtypes.from_numpy(array.dtype) is None:
        raise KerfError(
            Status.INVALID_ARGUMENT,
            f"feed '{name}' has numpy dtype {array.dtype}, which Kerf tensors cannot hold",
        )
    return array


def create(array):
    """A new kerf tensor holding a copy of `array` (from as_feed_array).
    The caller frees it with lib.kerf_tensor_free."""
    dims = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
    tensor = TensorP()
    code = dtypes.from_numpy(array.dtype)
    if code in dtypes.SUB_BYTE_INTEGERS:  # bytes kerf expects: the value as (u)int8
        signed = dtypes.SUB_BYTE_INTEGERS[code][1]
        array = np.ascontiguousarray(array.astype(np.int8 if signed else np.uint8))
    status = lib.kerf_tensor_create(code, dims, array.ndim, _address(array), array.nbytes, ctypes.byref(tensor))
    if status:
        check(status)
    return tensor


def _address(array):
    # Cheaper than array.ctypes.data, which builds a helper object on every call.
    return array.__array_interface__["data"][0]


def to_numpy(tensor, name):
    """A numpy-owned copy of a kerf tensor's contents. Does not free it."""
    code, dims, rank = ctypes.c_int32(), ctypes.POINTER(ctypes.c_int64)(), ctypes.c_size_t()
    data, size = ctypes.c_void_p(), ctypes.c_size_t()
    status = lib.kerf_tensor_info(tensor, ctypes.byref(code), ctypes.byref(dims), ctypes.byref(rank),
                                  ctypes.byref(data), ctypes.byref(size))
    if status:
        check(status)
    dtype = dtypes.to_numpy(code.value)
    if dtype is None:
        raise KerfError(
            Status.UNSUPPORTED,
            f"output '{name}' has element type {dtypes.name(code.value)}, "
            "which has no numpy dtype",
        )
    shape = tuple(dims[:rank.value]) if rank.value else ()

    sub_byte = dtypes.SUB_BYTE_INTEGERS.get(code.value)
    array = np.empty(shape, dtype=(np.int8 if sub_byte[1] else np.uint8) if sub_byte else dtype)
    if size.value != array.nbytes:
        raise KerfError(
            Status.INTERNAL,
            f"output '{name}' holds {size.value} bytes but shape {shape} of {dtype} "
            f"needs {array.nbytes}",
        )
    if array.nbytes:
        ctypes.memmove(_address(array), data.value, array.nbytes)
    if sub_byte:
        array = array.astype(dtype)
    return array
