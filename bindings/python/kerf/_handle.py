"""The lifetime every object holding a C handle shares: close(), `with`, and freeing when
garbage-collected."""

from .errors import KerfError, Status


class Handle:
    """Holds `_handle` (a ctypes pointer from the library, NULL once closed). Subclasses name
    what they are (`_kind`, for messages) and free the handle in `_free(handle)`."""

    _kind = "object"
    _handle = None

    def _live_handle(self):
        """The handle, or KerfError(INVALID_ARGUMENT) once closed."""
        if not self._handle:
            raise KerfError(Status.INVALID_ARGUMENT, f"the {self._kind} is closed")
        return self._handle

    def _free(self, handle):
        raise NotImplementedError

    def close(self):
        """Frees the C object now (later calls raise); closing twice is harmless."""
        handle, self._handle = self._handle, None
        if handle:
            self._free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass
