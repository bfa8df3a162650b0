#!/usr/bin/env python3
"""Checks the pruned and distilled digits MLP `make demo` wrote against the original.

    python3 scripts/demo_distill.py OUTDIR PRUNED.onnx DISTILLED.onnx [INT8.onnx]

Runs OUTDIR/digits_mlp.onnx (the teacher), PRUNED.onnx, DISTILLED.onnx (and INT8.onnx, its
quantization-aware fine-tuned static int8 form) in ONNX Runtime on the test split
(OUTDIR/digits_test.npz), prints their accuracies, sizes and the weights' sparsity, and exits
non-zero if a trained model is more than 1 point below the teacher or its weights' zeros (the
int8 weights' zeros for INT8.onnx) differ from the pruned model's.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

from demo_training import accuracy


def zeros(path):
    """{weight name: boolean mask of its zeros} of the two weight matrices (float, or the int8
    copies of a quantized file, named <weight>_quantized)."""
    masks = {}
    for t in onnx.load(path).graph.initializer:
        name = t.name[:-len("_quantized")] if t.name.endswith("_quantized") else t.name
        if name in ("coefficient", "coefficient1") and len(t.dims) == 2:
            masks[name] = numpy_helper.to_array(t) == 0
    return masks


def main() -> int:
    if len(sys.argv) not in (4, 5):
        print("usage: demo_distill.py OUTDIR PRUNED.onnx DISTILLED.onnx [INT8.onnx]", file=sys.stderr)
        return 2
    test = np.load(os.path.join(sys.argv[1], "digits_test.npz"))
    teacher, pruned = os.path.join(sys.argv[1], "digits_mlp.onnx"), sys.argv[2]
    trained = sys.argv[3:]
    paths = [teacher, pruned, *trained]
    scores = [accuracy(path, test["x"], test["y"]) for path in paths]
    masks = zeros(pruned)
    weights = sum(mask.size for mask in masks.values())
    print(f"test accuracy in ONNX Runtime, {len(test['y'])} samples; {sum(m.sum() for m in masks.values()) / weights:.1%} "
          f"of the {weights} weights are zero:")
    labels = ("original (teacher)", "pruned", "pruned + distilled", "+ QAT, static int8")
    for name, path, score in zip(labels, paths, scores):
        print(f"  {name:20} {score:.4f}  {os.path.getsize(path):6d} bytes")
    for path, score in zip(trained, scores[2:]):
        kept = zeros(path)
        if masks.keys() != kept.keys() or any(not np.array_equal(masks[k], kept[k]) for k in masks):
            print(f"FAIL: {os.path.basename(path)} changed which weights are zero", file=sys.stderr)
            return 1
        if scores[0] - score > 0.01:
            print(f"FAIL: {os.path.basename(path)} is {(scores[0] - score) * 100:.1f} points below the teacher", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
