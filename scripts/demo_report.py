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


BATCHES = (1, 32)  # and the whole test split


def timed(run, feeds, budget=0.3):
    """(outputs, median seconds per run) over as many runs as fit in `budget` seconds (10 to 2000)."""
    outputs = run(feeds)
    start = time.perf_counter()
    run(feeds)
    once = time.perf_counter() - start
    times = []
    for _ in range(max(10, min(2000, int(budget / max(once, 1e-9))))):
        start = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - start)
    return outputs, float(np.median(times))


def run_onnxruntime(model_path, batches):
    """Outputs of the last batch, and median seconds per batch size. One thread, as Kerf."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    seconds = {}
    for x in batches:
        outputs, seconds[len(x)] = timed(lambda feeds: session.run(None, feeds), {session.get_inputs()[0].name: x})
    return dict(zip(names, outputs)), seconds


def run_kerf(model_path, batches):
    kerf = import_kerf()
    model = kerf.load(model_path)
    session = model.session(threads=1)
    seconds = {}
    for x in batches:
        outputs, seconds[len(x)] = timed(session.run, {model.inputs[0].name: x})
    return outputs, seconds


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: demo_report.py OUTDIR", file=sys.stderr)
        return 2
    model_path = os.path.join(sys.argv[1], "digits_mlp.onnx")
    test = np.load(os.path.join(sys.argv[1], "digits_test.npz"))
    x, y = test["x"], test["y"]

    batches = [x[:b] for b in BATCHES] + [x]
    reference, ort_seconds = run_onnxruntime(model_path, batches)
    try:
        candidate, kerf_seconds = run_kerf(model_path, batches)
    except Exception as error:  # noqa: BLE001 - report it as the demo's result
        print(f"kerf failed: {type(error).__name__}: {error}")
        return 1

    print(f"digits MLP, {len(y)} test samples; accuracy on all of them:")
    for name, outputs in (("onnxruntime", reference), ("kerf", candidate)):
        print(f"  {name:<12} {np.mean(outputs['probabilities'].argmax(axis=1) == y):.4f}")
    print(f"median run, 1 thread each, Kerf at instruction-set level {import_kerf().instruction_set()}:")
    print(f"  {'batch':>5} {'onnxruntime':>12} {'kerf':>10} {'kerf/ort':>9}  faster")
    for batch in (len(b) for b in batches):
        o, k = ort_seconds[batch], kerf_seconds[batch]
        print(f"  {batch:>5} {o * 1e3:>9.3f} ms {k * 1e3:>7.3f} ms {k / o:>9.2f}  {'kerf' if k < o else 'onnxruntime'}")

    same_class = candidate["probabilities"].argmax(axis=1) == reference["probabilities"].argmax(axis=1)
    same_label = np.array_equal(candidate["label"], reference["label"])
    max_diff = np.abs(candidate["probabilities"] - reference["probabilities"]).max()
    print(f"agreement: {same_class.sum()}/{len(y)} samples same argmax, "
          f"label outputs {'identical' if same_label else 'DIFFER'}, "
          f"max |probability difference| {max_diff:.3g}")
    return 0 if same_class.all() and same_label else 1


if __name__ == "__main__":
    sys.exit(main())
