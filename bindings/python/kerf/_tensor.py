"""Copying numpy arrays into kerf tensors and kerf tensors out into numpy."""

import ctypes

import numpy as np

from . import dtypes
from ._bindings import ReleaseCallback, TensorP, check, lib
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


_NO_RELEASE = ReleaseCallback()  # a NULL release: the caller owns the memory


def borrow(array):
    """A kerf tensor that borrows `array`'s memory (from as_feed_array) without copying, or a
    copy where Kerf needs another layout (sub-byte integers). The caller keeps `array` alive and
    unmodified until it frees the tensor with lib.kerf_tensor_free."""
    code = dtypes.from_numpy(array.dtype)
    if code in dtypes.SUB_BYTE_INTEGERS:
        return create(array)
    dims = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
    tensor = TensorP()
    status = lib.kerf_tensor_wrap(code, dims, array.ndim, _address(array), array.nbytes, _NO_RELEASE, None,
                                  ctypes.byref(tensor))
    if status:
        check(status)
    return tensor


def _address(array):
    """The address of a contiguous array's first byte. The c_char view is the cheapest way to ask
    (about 0.4 us against 1-2 us for array.ctypes.data or __array_interface__); it needs a
    writable, non-empty buffer, so other arrays take the slower way."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    except (TypeError, ValueError):
        return array.__array_interface__["data"][0]


def to_numpy(tensor, name):
    """A numpy-owned copy of a kerf tensor's contents. Does not free it."""
    return OutputReader().read(tensor, name)


class OutputReader:
    """Copies kerf tensors out into numpy arrays, reusing its ctypes out-parameters from call
    to call (a reader serves one thread at a time)."""

    __slots__ = ("_code", "_dims", "_rank", "_data", "_size", "_refs")

    def __init__(self):
        self._code, self._dims, self._rank = ctypes.c_int32(), ctypes.POINTER(ctypes.c_int64)(), ctypes.c_size_t()
        self._data, self._size = ctypes.c_void_p(), ctypes.c_size_t()
        self._refs = tuple(ctypes.byref(x) for x in (self._code, self._dims, self._rank, self._data, self._size))

    def read(self, tensor, name):
        """A numpy-owned copy of `tensor` (output `name`, for messages). Does not free it."""
        status = lib.kerf_tensor_info(tensor, *self._refs)
        if status:
            check(status)
        code = self._code.value
        dtype = dtypes.to_numpy(code)
        if dtype is None:
            raise KerfError(
                Status.UNSUPPORTED,
                f"output '{name}' has element type {dtypes.name(code)}, "
                "which has no numpy dtype",
            )
        rank = self._rank.value
        shape = tuple(self._dims[:rank]) if rank else ()

        sub_byte = dtypes.SUB_BYTE_INTEGERS.get(code)
        array = np.empty(shape, dtype=(np.int8 if sub_byte[1] else np.uint8) if sub_byte else dtype)
        size = self._size.value
        if size != array.nbytes:
            raise KerfError(
                Status.INTERNAL,
                f"output '{name}' holds {size} bytes but shape {shape} of {dtype} "
                f"needs {array.nbytes}",
            )
        if size:
            ctypes.memmove(_address(array), self._data.value, size)
        if sub_byte:
            array = array.astype(dtype)
        return array
