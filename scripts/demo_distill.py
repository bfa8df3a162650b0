#!/usr/bin/env python3
"""Checks the pruned and distilled digits MLP `make demo` wrote against the original.

    python3 scripts/demo_distill.py OUTDIR PRUNED.onnx DISTILLED.onnx

Runs OUTDIR/digits_mlp.onnx (the teacher), PRUNED.onnx and DISTILLED.onnx in ONNX Runtime on the
test split (OUTDIR/digits_test.npz), prints their accuracies and the weights' sparsity, and exits
non-zero if the distilled model is more than 1 point below the teacher or its weights' zeros
differ from the pruned model's.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

from demo_training import accuracy


def zeros(path):
    """{weight name: boolean mask of its zeros} of the two weight matrices."""
    return {t.name: numpy_helper.to_array(t) == 0 for t in onnx.load(path).graph.initializer if t.name.startswith("coefficient")}


def main() -> int:
    if len(sys.argv) != 4:
        print("usage: demo_distill.py OUTDIR PRUNED.onnx DISTILLED.onnx", file=sys.stderr)
        return 2
    test = np.load(os.path.join(sys.argv[1], "digits_test.npz"))
    teacher, pruned, distilled = os.path.join(sys.argv[1], "digits_mlp.onnx"), sys.argv[2], sys.argv[3]
    scores = [accuracy(path, test["x"], test["y"]) for path in (teacher, pruned, distilled)]
    masks, kept = zeros(pruned), zeros(distilled)
    weights = sum(mask.size for mask in masks.values())
    print(f"test accuracy in ONNX Runtime, {len(test['y'])} samples; {sum(m.sum() for m in masks.values()) / weights:.1%} "
          f"of the {weights} weights are zero:")
    for name, score in zip(("original (teacher)", "pruned", "pruned + distilled"), scores):
        print(f"  {name:20} {score:.4f}")
    if masks.keys() != kept.keys() or any(not np.array_equal(masks[k], kept[k]) for k in masks):
        print("FAIL: distillation changed which weights are zero", file=sys.stderr)
        return 1
    if scores[0] - scores[2] > 0.01:
        print(f"FAIL: the distilled model is {(scores[0] - scores[2]) * 100:.1f} points below the teacher", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
