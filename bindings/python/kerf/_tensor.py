"""Copying numpy arrays into kerf tensors and kerf tensors out into numpy."""

import ctypes

import numpy as np

from . import dtypes
from ._bindings import TensorP, TensorView, check, lib
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
    array = _kerf_layout(array, code)
    status = lib.kerf_tensor_create(code, dims, array.ndim, _address(array), array.nbytes, ctypes.byref(tensor))
    if status:
        check(status)
    return tensor


def view(array, keep):
    """A TensorView of `array` (from as_feed_array) for kerf_session_run_views. Appends to
    `keep` what must stay alive until the call returns (dims, converted copies)."""
    code = dtypes.from_numpy(array.dtype)
    array = _kerf_layout(array, code)
    keep.append(array)
    dims = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
    keep.append(dims)
    return TensorView(code, array.ndim, dims, _address(array) if array.nbytes else None, array.nbytes)


def _kerf_layout(array, code):
    """`array` as the bytes Kerf expects for dtype `code`: itself, except sub-byte integers,
    which Kerf takes one value per (u)int8."""
    if code in dtypes.SUB_BYTE_INTEGERS:
        signed = dtypes.SUB_BYTE_INTEGERS[code][1]
        return np.ascontiguousarray(array.astype(np.int8 if signed else np.uint8))
    return array


def _address(array):
    """The address of a contiguous array's first byte. The c_char view is the cheapest way to ask
    (about 0.4 us against 1-2 us for array.ctypes.data or __array_interface__); it needs a
    writable, non-empty buffer, so other arrays take the slower way."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    except (TypeError, ValueError):
        return array.__array_interface__["data"][0]


def read_view(view, name):
    """A numpy-owned copy of the tensor `view` (a TensorView filled by Kerf) describes."""
    rank = view.rank
    return copy_out(view.dtype, tuple(view.dims[:rank]) if rank else (), view.data, view.byte_size, name)


def copy_out(code, shape, data, size, name):
    """A new numpy array of Kerf dtype `code` and `shape` holding the `size` bytes at `data`
    (output `name`, for messages)."""
    dtype = dtypes.to_numpy(code)
    if dtype is None:
        raise KerfError(
            Status.UNSUPPORTED,
            f"output '{name}' has element type {dtypes.name(code)}, "
            "which has no numpy dtype",
        )
    sub_byte = dtypes.SUB_BYTE_INTEGERS.get(code)
    array = np.empty(shape, dtype=(np.int8 if sub_byte[1] else np.uint8) if sub_byte else dtype)
    if size != array.nbytes:
        raise KerfError(
            Status.INTERNAL,
            f"output '{name}' holds {size} bytes but shape {shape} of {dtype} "
            f"needs {array.nbytes}",
        )
    if size:
        ctypes.memmove(_address(array), data, size)
    if sub_byte:
        array = array.astype(dtype)
    return array
