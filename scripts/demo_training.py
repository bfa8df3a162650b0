#!/usr/bin/env python3
"""Checks the models `make demo` trained from scratch against scikit-learn's.

    python3 scripts/demo_training.py OUTDIR TRAINED.onnx...

Runs OUTDIR/digits_mlp.onnx (scikit-learn's training) and each TRAINED.onnx (the same graph
re-initialized and trained by Kerf) in ONNX Runtime on the test split (OUTDIR/digits_test.npz),
prints their accuracies, and exits non-zero if one trained by Kerf is more than 1 point below.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import onnxruntime as ort


def accuracy(path, x, y):
    probabilities = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(["probabilities"], {"X": x})[0]
    return float((probabilities.argmax(axis=1) == y).mean())


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: demo_training.py OUTDIR TRAINED.onnx...", file=sys.stderr)
        return 2
    test = np.load(os.path.join(sys.argv[1], "digits_test.npz"))
    reference = accuracy(os.path.join(sys.argv[1], "digits_mlp.onnx"), test["x"], test["y"])
    print(f"test accuracy in ONNX Runtime, {len(test['y'])} samples:")
    print(f"  scikit-learn's training         {reference:.4f}")
    worst = 0.0
    for path in sys.argv[2:]:
        got = accuracy(path, test["x"], test["y"])
        print(f"  Kerf from scratch ({os.path.basename(path)}) {got:.4f}")
        worst = max(worst, reference - got)
    if worst > 0.01:
        print(f"FAIL: a model Kerf trained is {worst * 100:.1f} points below scikit-learn's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
