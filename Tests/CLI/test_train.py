"""`kerf train`: trains a model file, writes an ONNX file ONNX Runtime runs, prints a per-epoch
table; bad input is one line on stderr with exit status 1 and leaves the file untouched."""


import numpy as np
import onnx
import onnxruntime as ort

from cli import blobs, kerf, models


def accuracy(path, x, y):
    probabilities = ort.InferenceSession(str(path)).run(None, {"input": x})[0]
    return float((probabilities.argmax(axis=1) == y).mean())


def test_train_from_scratch_reaches_high_accuracy_and_writes_a_valid_file(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(models.mlp(in_features=16, hidden=32, classes=3), path)
    x, y = blobs()
    np.savez(tmp_path / "train.npz", input=x[:200], y=y[:200])
    np.savez(tmp_path / "valid.npz", input=x[200:], y=y[200:])
    out = tmp_path / "trained.onnx"
    result = kerf("train", path, "--data", tmp_path / "train.npz", "--validation", tmp_path / "valid.npz",
                  "--output", "probs", "--probabilities", "--optimizer", "adam", "--lr", "0.01", "--epochs", 8,
                  "--batch-size", 16, "--init", "xavier-uniform", "--seed", 3, "--report", tmp_path / "report.json", "-o", out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["epoch", "train", "loss", "valid", "loss", "valid", "acc", "seconds"]
    assert len(lines) == 1 + 8 + 2 and lines[-1] == f"wrote {out}"
    assert "104 steps" in lines[-2]
    onnx.checker.check_model(str(out), full_check=True)
    assert accuracy(out, x[200:], y[200:]) >= 0.9
    assert accuracy(path, x[200:], y[200:]) < 0.7  # the original file is unchanged (random weights)
    import json
    report = json.load(open(tmp_path / "report.json"))
    assert len(report["epochs"]) == 8 and report["steps"] == 104 and report["parameters"] == ["w1", "b1", "w2", "b2"]

    again = tmp_path / "again.onnx"
    kerf("train", path, "--data", tmp_path / "train.npz", "--output", "probs", "--probabilities", "--optimizer", "adam",
         "--lr", "0.01", "--epochs", 8, "--batch-size", 16, "--init", "xavier-uniform", "--seed", 3,
         "--validation", tmp_path / "valid.npz", "-o", again)
    first, second = onnx.load(str(out)), onnx.load(str(again))
    for a, b in zip(first.graph.initializer, second.graph.initializer):
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b))


def test_errors_are_one_line_and_leave_the_model_untouched(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(models.mlp(in_features=16, hidden=32, classes=3), path)
    original = path.read_bytes()
    x, y = blobs()
    np.savez(tmp_path / "train.npz", input=x, y=y)
    np.savez(tmp_path / "nolabels.npz", input=x)
    cases = [
        (["--data", tmp_path / "train.npz", "--output", "scores"], "'scores'"),
        (["--data", tmp_path / "nolabels.npz", "--output", "probs"], "'y' was not fed"),
        (["--data", tmp_path / "missing.npz"], "missing.npz"),
        (["--data", tmp_path / "train.npz", "--optimizer", "lbfgs"], "--optimizer"),
        (["--data", tmp_path / "train.npz", "--output", "probs", "--lr=-1"], "learning rate"),
    ]
    for args, needle in cases:
        result = kerf("train", path, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith("kerf: ") and result.stderr.count("\n") == 1, result.stderr
        assert needle in result.stderr, (needle, result.stderr)
        assert path.read_bytes() == original
