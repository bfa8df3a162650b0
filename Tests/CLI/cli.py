"""What the command-line tests share: the `kerf` binary ($KERF_CLI, default
.build/release/kerf), running it, the Python tests' model builders, and a small dataset."""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))
import models  # noqa: E402, F401 - re-exported for the tests

KERF = os.environ.get("KERF_CLI", os.path.join(ROOT, ".build", "release", "kerf"))


def kerf(*args, timeout=300):
    """Runs `kerf` with `args` (converted to str); the CompletedProcess, output as text."""
    return subprocess.run([KERF, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def blobs(seed=0, n=240):
    """Three separable classes in 16 dimensions: x float32 [n, 16], y int64 [n]."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((3, 16)) * 2
    y = rng.integers(0, 3, n)
    return (centers[y] + rng.standard_normal((n, 16))).astype(np.float32), y.astype(np.int64)
