#!/usr/bin/env python3
"""Runs the nine "light" real-architecture models shipped in the onnx wheel
(onnx/backend/test/data/light/light_*.onnx) through Kerf.

    python3 Tests/Conformance/run_light_models.py [--backend kerf|onnxruntime] [--filter SUBSTR]

Each model ships with its expected output only (light_X_output_0.pb). The input
is rebuilt exactly as ONNX's backend runner builds it: Runner.generate_dummy_data
with random=False, i.e. for every non-initializer input, symbolic dims set to 1,
(np.arange(n).reshape(shape) / n).astype(np.float32). Tolerances are the ones
onnx.backend.test.case.model declares (rtol 1e-3, 2e-3 for DenseNet; atol 1e-7).

Caveat: "light" models replace every weight by ConstantOfShape(shape, 0.02), so
all channels are equal and the expected output is one value repeated (0.001 =
softmax over 1000 equal logits; DenseNet-121 0.46095502), whatever the input.
These runs prove the architectures load, shape-check and run; they are a weak
check of arithmetic.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import BACKENDS, describe  # noqa: E402
from compare import outputs_mismatch  # noqa: E402

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def light_cases():
    """[(model path, rtol, atol)] as onnx.backend.test.case.model declares them."""
    from onnx.backend.test.case import model as model_cases

    repo_root = os.path.dirname(os.path.dirname(onnx.__file__))
    return [(os.path.join(repo_root, case.url), case.rtol, case.atol)
            for case in model_cases.collect_testcases()
            if case.kind == "real" and case.url.startswith("onnx/backend/test/data/light/")]


def dummy_feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The inputs ONNX's backend runner generates for a light model."""
    from onnx.backend.test.runner import Runner

    initializers = {t.name for t in model.graph.initializer}
    return {value.name: Runner.generate_dummy_data(value, seed=0, random=False)
            for value in model.graph.input if value.name not in initializers}


def expected_outputs(model_path: str, count: int) -> list[np.ndarray]:
    prefix = os.path.splitext(model_path)[0]
    return [numpy_helper.to_array(onnx.load_tensor(f"{prefix}_output_{k}.pb")) for k in range(count)]


def run_model(model_path: str, rtol: float, atol: float, backend: str) -> tuple[str | None, str]:
    """(None or the failure, a one-line measurement)."""
    model = onnx.load(model_path)
    names = [v.name for v in model.graph.output]
    expected = expected_outputs(model_path, len(names))
    try:
        start = time.perf_counter()
        run = BACKENDS[backend](model_path)
        loaded = time.perf_counter()
        actual = run(dummy_feeds(model))
        finished = time.perf_counter()
    except Exception as error:  # noqa: BLE001 - the model's failure, not the runner's
        return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}", ""
    problem = outputs_mismatch(expected, actual, names, rtol, atol)
    errors = [np.abs(a.astype(np.float64) - e.astype(np.float64)).max()
              for a, e in zip(actual, expected) if a.shape == e.shape and e.size]
    measured = (f"max abs error {max(errors, default=float('nan')):.3g}, "
                f"load {loaded - start:.2f} s, run {finished - loaded:.2f} s")
    return problem, measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="kerf")
    parser.add_argument("--filter", default="", help="only models whose file name contains SUBSTR")
    args = parser.parse_args()

    print(f"{describe(args.backend)}: light models from {LIGHT_DIR}")
    passed = failed = 0
    for model_path, rtol, atol in light_cases():
        name = os.path.basename(model_path)
        if args.filter not in name:
            continue
        problem, measured = run_model(model_path, rtol, atol, args.backend)
        if problem:
            failed += 1
            print(f"FAIL {name}: {problem}" + (f" ({measured})" if measured else ""))
        else:
            passed += 1
            print(f"ok   {name}: {measured}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
