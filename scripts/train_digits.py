#!/usr/bin/env python3
"""Trains a small MLP on scikit-learn's bundled digits and exports it to ONNX.

    python3 scripts/train_digits.py OUTDIR

Writes
    OUTDIR/digits_mlp.onnx     skl2onnx export, opset 17, IR 8, outputs
                               label (int64 [N]) then probabilities (float32 [N,10])
    OUTDIR/digits_train.npz    x: float32 [N,64] (pixels / 16), y: int64 [N]: the training split
    OUTDIR/digits_test.npz     the test split, as digits_train.npz
    OUTDIR/digits_train_x.npy, digits_train_y.npy   the training split for bindings/c/train.c:
                               x, and y one-hot (float32 [N,10])
    OUTDIR/digits_sample.npy   float32 [1,64], the first test sample (for bindings/c/classify.c)
and prints the operators in the exported graph. Deterministic: same files every run.
"""
from __future__ import annotations

import collections
import os
import sys

import numpy as np
import onnx
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

OPSET = 17
IR_VERSION = 8  # onnx 1.23 writes IR 14 by default; ONNX Runtime accepts at most 13


def digits_split():
    """(x_train, x_test, y_train, y_test): pixels scaled to [0, 1] as float32."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=0)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: train_digits.py OUTDIR", file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)

    x_train, x_test, y_train, y_test = digits_split()
    classifier = MLPClassifier(hidden_layer_sizes=(64,), max_iter=1000, random_state=0)
    classifier.fit(x_train, y_train)
    print(f"trained in {classifier.n_iter_} iterations; "
          f"scikit-learn test accuracy {classifier.score(x_test, y_test):.4f}")

    model = to_onnx(classifier, x_train[:1], target_opset=OPSET,
                    options={id(classifier): {"zipmap": False}})
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(outdir, "digits_mlp.onnx"))
    np.savez(os.path.join(outdir, "digits_train.npz"), x=x_train, y=y_train)
    np.save(os.path.join(outdir, "digits_train_x.npy"), x_train)
    np.save(os.path.join(outdir, "digits_train_y.npy"), np.eye(10, dtype=np.float32)[y_train])
    np.savez(os.path.join(outdir, "digits_test.npz"), x=x_test, y=y_test)
    np.save(os.path.join(outdir, "digits_sample.npy"), x_test[:1])

    ops = collections.Counter(node.op_type for node in model.graph.node)
    print("inputs:  " + ", ".join(describe(v) for v in model.graph.input))
    print("outputs: " + ", ".join(describe(v) for v in model.graph.output))
    print("ops:     " + ", ".join(f"{op} x{n}" for op, n in sorted(ops.items())))
    print(f"wrote digits_mlp.onnx, digits_test.npz ({len(y_test)} samples), digits_sample.npy to {outdir}")
    return 0


def describe(value: onnx.ValueInfoProto) -> str:
    tensor = value.type.tensor_type
    dims = [str(d.dim_value) if d.HasField("dim_value") else d.dim_param or "?"
            for d in tensor.shape.dim]
    return f"{value.name} {onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)}[{','.join(dims)}]"


if __name__ == "__main__":
    sys.exit(main())
