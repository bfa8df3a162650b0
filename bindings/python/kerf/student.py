"""kerf.student: a smaller model made from a teacher's own layers, for kerf.distill to train."""

import ctypes

from ._bindings import StudentOptions, check, lib, new_options, take_string
from .compress_common import Report, rewrite_model
from .errors import KerfError, Status

_DROP = {None: 0, "every-other": 1}  # KERF_DROP_*; 2 = explicit indices


def student(teacher, dst=None, *, drop_layers="every-other", narrow=None):
    """Makes a student from a teacher and returns a Report: {"layers": [{"index", "nodes",
    "parameters", "dropped"}], "narrowed" (kerf.prune's report), "parameters_before",
    "parameters_after", "bytes_before", "bytes_after"}.

    teacher: a path, or a kerf.Model (changed in place; saved only if dst is given). dst: where
        to write the student; None with a path rewrites it in place (atomically).
    drop_layers: "every-other" (remove layers 1, 3, 5, ...: DistilBERT's student, initialized
        from the teacher's even layers), a list of layer indices, or None. Layers are found by
        the exporter's names (layers.N, layer.N, h.N, blocks.N); each must be one block on the
        residual stream, whose readers then read the layer's input.
    narrow: a fraction in (0, 1) of every channel group (feed-forward channels, attention heads,
        Conv channels) to remove too, by kerf.prune(method="channel").
    """
    options = new_options(StudentOptions)
    keep = []
    if isinstance(drop_layers, (list, tuple, range)):
        try:
            indices = [int(i) for i in drop_layers]
        except (TypeError, ValueError):
            raise KerfError(Status.INVALID_ARGUMENT, f"drop_layers entries must be layer indices, got {drop_layers!r}") from None
        array = (ctypes.c_int64 * max(len(indices), 1))(*indices)
        keep.append(array)
        options.drop = 2
        options.drop_indices = ctypes.cast(array, type(options.drop_indices))
        options.n_drop_indices = len(indices)
    elif drop_layers in _DROP:
        options.drop = _DROP[drop_layers]
    else:
        raise KerfError(Status.INVALID_ARGUMENT, f"drop_layers must be 'every-other', a list of indices or None, got {drop_layers!r}")
    if narrow is not None:
        try:
            options.narrow = float(narrow)
        except (TypeError, ValueError):
            raise KerfError(Status.INVALID_ARGUMENT, f"narrow must be a number, got {narrow!r}") from None
        if not 0 < options.narrow < 1:
            raise KerfError(Status.INVALID_ARGUMENT, f"narrow must be in (0, 1), got {narrow!r}")

    def run(model):
        report = ctypes.c_void_p()
        check(lib.kerf_student(model._live_handle(), ctypes.byref(options), ctypes.byref(report)))
        return Report.from_json(take_string(report))

    return rewrite_model(teacher, dst, run)


__all__ = ["student"]
