"""The runtimes a conformance runner can drive: Kerf (the point) and ONNX Runtime
(to check the harness itself against a known-good runtime).

A backend is a function `prepare(model_path) -> run`, where
`run(feeds: {name: ndarray}) -> [ndarray, ...]` returns every graph output in
graph order.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def import_kerf():
    """Imports the Python binding from this checkout unless one is installed.

    Without KERF_LIBRARY, uses .build/release/libKerf.so, else .build/debug/libKerf.so.
    """
    if "KERF_LIBRARY" not in os.environ:
        for config in ("release", "debug"):
            candidate = REPO / ".build" / config / "libKerf.so"
            if candidate.is_file():
                os.environ["KERF_LIBRARY"] = str(candidate)
                break
    binding = REPO / "bindings" / "python"
    if (binding / "kerf").is_dir() and str(binding) not in sys.path:
        sys.path.insert(0, str(binding))
    import kerf

    return kerf


def prepare_kerf(model_path: str):
    kerf = import_kerf()
    session = kerf.load(model_path).session()

    def run(feeds):
        return list(session.run(feeds).values())

    return run


def prepare_onnxruntime(model_path: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])

    def run(feeds):
        return session.run(None, feeds)

    return run


BACKENDS = {"kerf": prepare_kerf, "onnxruntime": prepare_onnxruntime}


def describe(backend: str) -> str:
    """One line naming what is being tested, for the runners' headers."""
    if backend != "kerf":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    try:
        kerf = import_kerf()
    except ImportError as error:
        raise SystemExit(f"error: {error}") from None
    return f"kerf {kerf.__version__} ({os.environ.get('KERF_LIBRARY', 'bundled library')})"
