"""Run by the Python of a fresh virtual environment holding only the kerf wheel (and numpy):
the package finds its own library and oneDNN without KERF_LIBRARY or a system libdnnl, runs,
quantizes and prunes the digits MLP, and the `kerf` command works.

    python smoke.py DIR    (DIR holds digits_mlp.onnx and digits_test.npz from scripts/train_digits.py)
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

import kerf


def accuracy(path, x, y):
    with kerf.load(path) as model, model.session() as session:
        scores = session.run({"X": x})["probabilities"]
    return float(np.mean(np.argmax(scores, axis=1) == y))


def loaded_library(fragment):
    """The path this process mapped a library whose file name contains `fragment` from."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if fragment in line.rsplit("/", 1)[-1]}
    assert len(paths) == 1, paths
    return paths.pop()


def main(folder):
    assert "KERF_LIBRARY" not in os.environ
    package = os.path.dirname(kerf.__file__)
    assert package.startswith(sys.prefix), (package, sys.prefix)
    path = os.path.join(folder, "digits_mlp.onnx")
    data = np.load(os.path.join(folder, "digits_test.npz"))
    x, y = data["x"], data["y"]

    float_accuracy = accuracy(path, x, y)
    assert float_accuracy >= 0.95, float_accuracy
    # The wheel's own copies: libKerf.so inside the package, oneDNN from the wheel's libraries.
    assert loaded_library("libKerf").startswith(package), loaded_library("libKerf")
    assert os.sep + "kerf.libs" + os.sep in loaded_library("libdnnl"), loaded_library("libdnnl")

    work = tempfile.mkdtemp()
    quantized, pruned = os.path.join(work, "int8.onnx"), os.path.join(work, "pruned.onnx")
    kerf.quantize(path, quantized, mode="dynamic")
    assert accuracy(quantized, x, y) >= float_accuracy - 0.01
    report = kerf.prune(path, pruned, sparsity=0.3)
    assert report.overall_sparsity >= 0.29, report.overall_sparsity
    assert accuracy(pruned, x, y) >= float_accuracy - 0.05

    command = os.path.join(os.path.dirname(sys.executable), "kerf")
    shown = subprocess.run([command, "inspect", path], capture_output=True, text=True, check=True).stdout
    assert "probabilities" in shown, shown
    print(f"wheel: {package}; oneDNN {loaded_library('libdnnl')}; accuracy float {float_accuracy:.4f}, "
          f"int8 {accuracy(quantized, x, y):.4f}, pruned 30% {accuracy(pruned, x, y):.4f}; `kerf inspect` ran")


if __name__ == "__main__":
    main(sys.argv[1])
