"""Pieces the compression and training calls share: reports (plot() draws them), name lists, progress callbacks."""

import ctypes
import json
import os
import sys

from ._bindings import ProgressCallback
from .errors import KerfError, Status
from .model import Model, load


class Report(dict):
    """A JSON report from the library, as a dict whose keys also read as attributes
    (report.overall_sparsity == report["overall_sparsity"])."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def from_json(cls, text):
        """The report in `text` as a `cls`; its nested objects are plain Reports."""
        return cls(json.loads(text, object_hook=Report))


class SensitivityReport(Report):
    """kerf.sensitivity's Report."""

    def plot(self, path=None, *, metric=None):
        """A matplotlib Figure of one line per tensor: `metric` ("accuracy", "relative_error",
        "max_abs_error", "cosine"; default accuracy when the report has it, else relative_error)
        against sparsity, the unpruned accuracy dashed. Saved to `path` when given (format from
        its extension). Raises ImportError when matplotlib is not installed. See kerf.plots."""
        from . import plots
        return plots.sensitivity(self, path, metric=metric)


class QuantizeReport(Report):
    """kerf.quantize's Report."""

    def plot(self, path=None):
        """A matplotlib Figure of a horizontal bar per quantized node of its SQNR in dB, in graph
        order. Saved to `path` when given (format from its extension). Needs the SQNR that
        calibration data give; raises ImportError when matplotlib is not
        installed. See kerf.plots."""
        from . import plots
        return plots.quantization(self, path)


class TrainReport(Report):
    """kerf.train's Report."""

    def plot(self, path=None):
        """A matplotlib Figure of training and validation loss per epoch, with validation
        accuracy on a second y axis when the report has it. Saved to `path` when given (format
        from its extension). Raises ImportError when matplotlib is not installed. See kerf.plots."""
        from . import plots
        return plots.training(self, path)


def choice(value, choices, what):
    """choices[value], or a KerfError naming the valid values."""
    try:
        return choices[value]
    except (KeyError, TypeError):
        raise KerfError(Status.INVALID_ARGUMENT,
                        f"{what} must be one of {', '.join(map(repr, choices))}, got {value!r}") from None


def rewrite_model(src, dst, call):
    """Runs call(model) on src (a path, or a kerf.Model changed in place) and saves the result
    to dst; dst None with a path src rewrites src in place, atomically. Returns call's result."""
    model, owned = (src, False) if isinstance(src, Model) else (load(src), True)
    try:
        result = call(model)
        if dst is not None:
            model.save(dst)
        elif owned:
            model.save(src)
        return result
    finally:
        if owned:
            model.close()


def c_strings(names, what):
    """A ctypes char* array of `names` (an iterable of str), and its length."""
    if isinstance(names, (str, bytes)):
        names = [names]
    encoded = []
    for name in names:
        data = os.fsencode(name) if isinstance(name, str) else bytes(name)
        if b"\0" in data:
            raise KerfError(Status.INVALID_ARGUMENT, f"{what} entry {name!r} contains a NUL byte")
        encoded.append(data)
    return (ctypes.c_char_p * max(len(encoded), 1))(*encoded), len(encoded)


class ProgressBar:
    """What `progress=True` shows: tqdm's bar when tqdm is installed, else one line on `stream`
    (stderr) redrawn in place, as the CLI draws it. Never cancels."""

    def __init__(self, label, stream=None):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.bar = None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self.tqdm = tqdm

    def __call__(self, done, total, message):
        if total <= 0:
            return True
        if self.tqdm is not None:
            if self.bar is None or self.bar.total != total:
                if self.bar is not None:
                    self.bar.close()
                self.bar = self.tqdm(total=total, desc=self.label)
            self.bar.set_postfix_str(message[:40], refresh=False)
            self.bar.update(done - self.bar.n)
            if done >= total:
                self.bar.close()
                self.bar = None
            return True
        width = 30
        filled = min(width, done * width // total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {message[:40]}\x1b[K")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
        return True


class ProgressAdapter:
    """Wraps `progress` as a kerf_progress_fn: None (no calls), True (a `ProgressBar` labelled
    `label`) or a Python callable progress(done, total, message) -> bool|None. Returning False
    cancels; an exception cancels too and is re-raised by `reraise()` after the call returns."""

    def __init__(self, progress, label="kerf"):
        if progress is True:
            progress = ProgressBar(label)
        elif progress is False:
            progress = None
        self.progress = progress
        self.error = None
        self.function = ProgressCallback(self._call) if progress is not None else ProgressCallback()

    def _call(self, _user, done, total, message):
        try:
            keep_going = self.progress(done, total, message.decode("utf-8", errors="replace") if message else "")
            return 0 if keep_going is None or keep_going else 1
        except BaseException as error:  # noqa: BLE001 - must not unwind through C
            self.error = error
            return 1

    def reraise(self):
        if self.error is not None:
            raise self.error
