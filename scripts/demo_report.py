#!/usr/bin/env python3
"""Compares Kerf with ONNX Runtime on the digits MLP written by train_digits.py.

    python3 scripts/demo_report.py OUTDIR

Runs OUTDIR/digits_mlp.onnx on the whole test split (OUTDIR/digits_test.npz) in
both runtimes and prints each one's accuracy, run time, and their agreement.
Exits non-zero if Kerf fails or if the two disagree on any sample's class.
The library comes from $KERF_LIBRARY, else .build/release, else .build/debug.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def import_kerf():
    if "KERF_LIBRARY" not in os.environ:
        for config in ("release", "debug"):
            candidate = REPO / ".build" / config / "libKerf.so"
            if candidate.is_file():
                os.environ["KERF_LIBRARY"] = str(candidate)
                break
    sys.path.insert(0, str(REPO / "bindings" / "python"))
    import kerf

    return kerf


def timed(run, feeds, repeats=20):
    """(outputs, median seconds per run)."""
    outputs = run(feeds)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - start)
    return outputs, float(np.median(times))


def run_onnxruntime(model_path, x):
    import onnxruntime

    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs, seconds = timed(lambda feeds: session.run(None, feeds), {session.get_inputs()[0].name: x})
    return dict(zip(names, outputs)), seconds


def run_kerf(model_path, x):
    kerf = import_kerf()
    model = kerf.load(model_path)
    session = model.session()
    outputs, seconds = timed(session.run, {model.inputs[0].name: x})
    return outputs, seconds


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: demo_report.py OUTDIR", file=sys.stderr)
        return 2
    model_path = os.path.join(sys.argv[1], "digits_mlp.onnx")
    test = np.load(os.path.join(sys.argv[1], "digits_test.npz"))
    x, y = test["x"], test["y"]

    reference, ort_seconds = run_onnxruntime(model_path, x)
    try:
        candidate, kerf_seconds = run_kerf(model_path, x)
    except Exception as error:  # noqa: BLE001 - report it as the demo's result
        print(f"kerf failed: {type(error).__name__}: {error}")
        return 1

    rows = [("onnxruntime", reference, ort_seconds), ("kerf", candidate, kerf_seconds)]
    print(f"digits MLP, {len(y)} test samples, batch {len(y)}")
    print(f"{'runtime':<12} {'accuracy':>8} {'median run':>11}")
    for name, outputs, seconds in rows:
        accuracy = np.mean(outputs["probabilities"].argmax(axis=1) == y)
        print(f"{name:<12} {accuracy:>8.4f} {seconds * 1e3:>8.3f} ms")

    same_class = candidate["probabilities"].argmax(axis=1) == reference["probabilities"].argmax(axis=1)
    same_label = np.array_equal(candidate["label"], reference["label"])
    max_diff = np.abs(candidate["probabilities"] - reference["probabilities"]).max()
    print(f"agreement: {same_class.sum()}/{len(y)} samples same argmax, "
          f"label outputs {'identical' if same_label else 'DIFFER'}, "
          f"max |probability difference| {max_diff:.3g}")
    return 0 if same_class.all() and same_label else 1


if __name__ == "__main__":
    sys.exit(main())
