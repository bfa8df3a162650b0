"""Copying numpy arrays into kerf tensors and kerf tensors out into numpy."""

import ctypes

import numpy as np

from . import dtypes
from ._bindings import TensorP, TensorView, check, lib
from .errors import KerfError, Status

_FROM_NUMPY = dtypes._FROM_NUMPY          # numpy dtype -> kerf_dtype code
_TO_NUMPY = dtypes._TO_NUMPY_BY_CODE      # kerf_dtype code -> numpy dtype


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


MAX_RANK = 64  # Kerf's limit on tensor rank


def fill_view(view, dims, array):
    """Describes `array` (from as_feed_array) in the TensorView `view`, its dims written into
    `dims` (a c_int64 array of MAX_RANK that `view.dims` points at). Returns the array the view
    points at, which the caller keeps alive until Kerf has read it."""
    code = _FROM_NUMPY[array.dtype]
    if code in dtypes.SUB_BYTE_INTEGERS:
        array = _kerf_layout(array, code)
    rank = array.ndim
    if rank > MAX_RANK:
        raise KerfError(Status.INVALID_ARGUMENT, f"rank {rank} is too large (at most {MAX_RANK})")
    view.dtype = code
    view.rank = rank
    dims[:rank] = array.shape
    view.byte_size = size = array.nbytes
    view.data = _address(array) if size else None
    return array


def code_of(dtype):
    """The kerf_dtype code of numpy `dtype` when Kerf's bytes for it are numpy's (no sub-byte
    integers), else None."""
    code = _FROM_NUMPY.get(dtype)
    return None if code is None or code in dtypes.SUB_BYTE_INTEGERS else code


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
    shape = tuple(view.dims[:rank]) if rank else ()
    code = view.dtype
    dtype = _TO_NUMPY.get(code)
    if dtype is None or code in dtypes.SUB_BYTE_INTEGERS:
        return copy_out(code, shape, view.data, view.byte_size, name)
    array = np.empty(shape, dtype)
    size = view.byte_size
    if size != array.nbytes:
        return copy_out(code, shape, view.data, size, name)  # raises with the sizes
    if size:
        ctypes.memmove(_address(array), view.data, size)
    return array


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


def take_array(tensor, name):
    """A numpy copy of the kerf tensor `tensor` (a TensorP), which is then freed."""
    try:
        code = ctypes.c_int32()
        dims = ctypes.POINTER(ctypes.c_int64)()
        rank = ctypes.c_size_t()
        data = ctypes.c_void_p()
        size = ctypes.c_size_t()
        check(lib.kerf_tensor_info(tensor, ctypes.byref(code), ctypes.byref(dims), ctypes.byref(rank),
                                   ctypes.byref(data), ctypes.byref(size)))
        shape = tuple(dims[:rank.value]) if rank.value else ()
        return copy_out(code.value, shape, data.value, size.value, name)
    finally:
        lib.kerf_tensor_free(tensor)
