"""`kerf distill`: a pruned student trained to imitate its teacher keeps exactly its zeros and
agrees with the teacher more than before; the per-epoch table, JSON report and SVG curves;
bad input is one line on stderr with exit status 1 and leaves the student untouched."""

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from cli import kerf, models


def setup(tmp_path):
    """A teacher MLP (16 -> 32 -> 3, Softmax), a copy with 70% of each weight zeroed, and inputs."""
    teacher = models.mlp(in_features=16, hidden=32, classes=3, seed=4)
    onnx.save(teacher, tmp_path / "teacher.onnx")
    for tensor in teacher.graph.initializer:
        values = numpy_helper.to_array(tensor).copy()
        if values.ndim == 2:
            values[np.abs(values) < np.quantile(np.abs(values), 0.7)] = 0
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    onnx.save(teacher, tmp_path / "student.onnx")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 16)).astype(np.float32)
    np.savez(tmp_path / "train.npz", input=x[:500], y=rng.integers(0, 3, 500))
    np.savez(tmp_path / "valid.npz", input=x[500:])
    return x[500:]


def agreement(path, teacher, x):
    a = ort.InferenceSession(str(path)).run(None, {"input": x})[0].argmax(axis=1)
    b = ort.InferenceSession(str(teacher)).run(None, {"input": x})[0].argmax(axis=1)
    return float((a == b).mean())


def zeros(path):
    return {t.name: int((numpy_helper.to_array(t) == 0).sum()) for t in onnx.load(str(path)).graph.initializer}


def test_distill_recovers_a_pruned_student_and_keeps_its_zeros(tmp_path):
    x = setup(tmp_path)
    out = tmp_path / "distilled.onnx"
    result = kerf("distill", tmp_path / "teacher.onnx", tmp_path / "student.onnx", "--data", tmp_path / "train.npz",
                  "--validation", tmp_path / "valid.npz", "--optimizer", "adam", "--lr", "0.01", "--epochs", 30,
                  "--temperature", 2, "--report", tmp_path / "report.json", "--plot", tmp_path / "curves.svg", "-o", out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["epoch", "train", "loss", "valid", "loss", "valid", "acc", "seconds"]
    assert len(lines) == 1 + 30 + 3 and lines[-1] == f"wrote {out}"
    assert lines[-2].startswith("sparsity kept: w1 ") and "w2" in lines[-2]
    onnx.checker.check_model(str(out), full_check=True)
    before = agreement(tmp_path / "student.onnx", tmp_path / "teacher.onnx", x)
    after = agreement(out, tmp_path / "teacher.onnx", x)
    assert after > before and after >= 0.85
    assert zeros(out)["w1"] == zeros(tmp_path / "student.onnx")["w1"] > 0
    assert zeros(out)["w2"] == zeros(tmp_path / "student.onnx")["w2"] > 0
    report = json.load(open(tmp_path / "report.json"))
    assert len(report["epochs"]) == 30 and report["epochs"][report["best_epoch"]]["validation_accuracy"] == after
    assert [s["name"] for s in report["sparsity"]] == ["w1", "w2"]
    assert (tmp_path / "curves.svg").read_text().count("<polyline") == 3


def test_distill_with_labels_and_no_keep_sparsity_in_place(tmp_path):
    setup(tmp_path)
    student = tmp_path / "student.onnx"
    pruned_zeros = zeros(student)["w1"]
    result = kerf("distill", tmp_path / "teacher.onnx", student, "--data", tmp_path / "train.npz", "--labels", "y",
                  "--alpha", 0.7, "--epochs", 2, "--no-keep-sparsity", "--optimizer", "adam", "--lr", "0.01")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"wrote {student}"
    assert zeros(student)["w1"] < pruned_zeros // 4  # the pruned elements trained


def test_distill_errors_are_one_line_and_leave_the_student_untouched(tmp_path):
    setup(tmp_path)
    student = tmp_path / "student.onnx"
    original = student.read_bytes()
    other = models.mlp(in_features=16, hidden=8, classes=3, input_name="pixels")
    onnx.save(other, tmp_path / "other.onnx")
    base = ["distill", tmp_path / "teacher.onnx", student, "--data", tmp_path / "train.npz"]
    for extra, needle in [(["--output-loss", "kld"], "--output-loss"), (["--values", "probs"], "STUDENT=TEACHER"),
                          (["--values", "probs=nope"], "'nope'"), (["--temperature", "0"], "temperature"),
                          (["--labels", "y", "--output-loss", "mse"], "labels"), (["--plot", "c.png"], ".svg")]:
        result = kerf(*base, *extra)
        assert result.returncode == 1, (extra, result.stdout)
        assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("kerf: ")
        assert student.read_bytes() == original
    result = kerf("distill", tmp_path / "other.onnx", student, "--data", tmp_path / "train.npz")
    assert result.returncode == 1 and "'pixels'" in result.stderr
    assert student.read_bytes() == original


def test_distill_with_gradual_pruning_prunes_the_student_to_the_final_sparsity(tmp_path):
    setup(tmp_path)
    out = tmp_path / "gradual.onnx"
    result = kerf("distill", tmp_path / "teacher.onnx", tmp_path / "teacher.onnx", "--data", tmp_path / "train.npz",
                  "--epochs", 8, "--optimizer", "adam", "--lr", "0.01", "--gradual-prune", 0.75, "--gradual-every", 4, "-o", out)
    assert result.returncode == 0, result.stderr
    assert zeros(out)["w1"] == 0.75 * 16 * 32 and zeros(out)["w2"] == 0.75 * 32 * 3
    assert zeros(out)["b1"] == 0
    assert "sparsity kept: w1 75.0%, w2 75.0%" in result.stdout
    result = kerf("distill", tmp_path / "teacher.onnx", tmp_path / "teacher.onnx", "--data", tmp_path / "train.npz",
                  "--gradual-prune", 1.5, "-o", out)
    assert result.returncode == 1 and "sparsity" in result.stderr
    movement = tmp_path / "movement.onnx"
    result = kerf("distill", tmp_path / "teacher.onnx", tmp_path / "teacher.onnx", "--data", tmp_path / "train.npz",
                  "--epochs", 8, "--optimizer", "adam", "--lr", "0.01", "--gradual-prune", 0.75, "--gradual-every", 4,
                  "--gradual-criterion", "movement", "-o", movement)
    assert result.returncode == 0, result.stderr
    assert zeros(movement)["w1"] == 0.75 * 16 * 32 and zeros(movement)["w2"] == 0.75 * 32 * 3
    masks = [{t.name: numpy_helper.to_array(t) == 0 for t in onnx.load(str(p)).graph.initializer} for p in (out, movement)]
    assert not np.array_equal(masks[0]["w1"], masks[1]["w1"]), "movement and magnitude choose other weights"
    result = kerf("distill", tmp_path / "teacher.onnx", tmp_path / "teacher.onnx", "--data", tmp_path / "train.npz",
                  "--gradual-prune", 0.5, "--gradual-criterion", "random", "-o", movement)
    assert result.returncode == 1 and "--gradual-criterion" in result.stderr


def quantized_weight_zeros(path):
    """{float weight name: zeros of its int8 copy} of a static QDQ file."""
    return {t.name[:-len("_quantized")]: int((numpy_helper.to_array(t) == 0).sum())
            for t in onnx.load(str(path)).graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2}


def test_distill_with_qat_writes_the_static_int8_file_and_keeps_the_zeros(tmp_path):
    x = setup(tmp_path)
    out = tmp_path / "int8.onnx"
    result = kerf("distill", tmp_path / "teacher.onnx", tmp_path / "student.onnx", "--data", tmp_path / "train.npz",
                  "--optimizer", "adam", "--lr", "0.01", "--epochs", 20, "--qat", "static", "--report", tmp_path / "r.json", "-o", out)
    assert result.returncode == 0, result.stderr
    assert "static int8 quantization" in result.stdout and result.stdout.splitlines()[-1] == f"wrote {out}"
    onnx.checker.check_model(str(out), full_check=True)
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("QuantizeLinear") == 2 and ops.count("Gemm") == 2 and not any(n.domain for n in onnx.load(str(out)).graph.node)
    assert quantized_weight_zeros(out) == {"w1": zeros(tmp_path / "student.onnx")["w1"], "w2": zeros(tmp_path / "student.onnx")["w2"]}
    before = agreement(tmp_path / "student.onnx", tmp_path / "teacher.onnx", x)
    after = agreement(out, tmp_path / "teacher.onnx", x)
    assert after > before and after >= 0.85
    report = json.load(open(tmp_path / "r.json"))
    assert report["quantization"]["mode"] == "static" and len(report["quantization"]["nodes"]) == 2
    activations = [a["name"] for a in report["quantization"]["activations"]]
    assert len(activations) == 2 and "input" in activations

    dynamic = tmp_path / "dynamic.onnx"
    result = kerf("train", tmp_path / "teacher.onnx", "--data", tmp_path / "train.npz", "--labels", "y", "--epochs", 2,
                  "--qat", "dynamic", "-o", dynamic)
    assert result.returncode == 0, result.stderr
    assert [n.op_type for n in onnx.load(str(dynamic)).graph.node].count("DynamicQuantizeLinear") == 2
    ort.InferenceSession(str(dynamic)).run(None, {"input": x})

    student = tmp_path / "student.onnx"
    original = student.read_bytes()
    for extra, needle in [(["--qat", "int4"], "--qat"), (["--calibration", tmp_path / "valid.npz"], "--qat"),
                          (["--qat", "static", "--qat-momentum", "2"], "momentum")]:
        result = kerf("distill", tmp_path / "teacher.onnx", student, "--data", tmp_path / "train.npz", *extra)
        assert result.returncode == 1 and needle in result.stderr and len(result.stderr.strip().splitlines()) == 1, (extra, result.stderr)
        assert student.read_bytes() == original
