"""`kerf student`: every other numbered layer removed (the stream skips it, outputs equal the model
built without those layers), explicit indices, the report; then `kerf distill --match` trains the
student's hidden layer towards the teacher's through a projection left out of the file; one-line
errors that write nothing."""

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from cli import kerf

WIDTH = 12


def encoder(layers, weights):
    """x [N, 12] → /embed/MatMul → per layer i: x + Relu(x · W_i) (named /layers.i/...) → /head/MatMul → logits [N, 3]."""
    nodes = [helper.make_node("MatMul", ["x", "embed.weight"], ["e"], name="/embed/MatMul")]
    inits = [numpy_helper.from_array(weights["embed"], "embed.weight")]
    stream = "e"
    for i in layers:
        p = f"/layers.{i}"
        nodes += [helper.make_node("MatMul", [stream, f"layers.{i}.weight"], [f"{p}/h"], name=f"{p}/fc/MatMul"),
                  helper.make_node("Relu", [f"{p}/h"], [f"{p}/r"], name=f"{p}/act/Relu"),
                  helper.make_node("Add", [stream, f"{p}/r"], [f"{p}/out"], name=f"{p}/Add")]
        inits.append(numpy_helper.from_array(weights[i], f"layers.{i}.weight"))
        stream = f"{p}/out"
    nodes.append(helper.make_node("MatMul", [stream, "head.weight"], ["logits"], name="/head/MatMul"))
    inits.append(numpy_helper.from_array(weights["head"], "head.weight"))
    graph = helper.make_graph(nodes, "encoder", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def weights(seed=0):
    rng = np.random.default_rng(seed)
    w = {i: (rng.standard_normal((WIDTH, WIDTH)) * 0.3).astype(np.float32) for i in range(4)}
    w["embed"] = rng.standard_normal((WIDTH, WIDTH)).astype(np.float32)
    w["head"] = rng.standard_normal((WIDTH, 3)).astype(np.float32)
    return w


def run(path, x):
    return ort.InferenceSession(str(path)).run(None, {"x": x})[0]


def test_student_removes_every_other_layer_and_distill_matches_hidden_states(tmp_path):
    w = weights()
    onnx.save(encoder(range(4), w), tmp_path / "teacher.onnx")
    result = kerf("student", tmp_path / "teacher.onnx", "-o", tmp_path / "student.onnx", "--report", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [f"layer {i}: 3 nodes, {WIDTH * WIDTH} parameters" + (", removed" if i % 2 else "") for i in range(4)]
    assert lines[-1] == f"wrote {tmp_path / 'student.onnx'}"
    report = json.load(open(tmp_path / "r.json"))
    assert report["parameters_before"] - report["parameters_after"] == 2 * WIDTH * WIDTH
    x = np.random.default_rng(1).standard_normal((20, WIDTH)).astype(np.float32)
    onnx.save(encoder([0, 2], w), tmp_path / "expected.onnx")
    np.testing.assert_allclose(run(tmp_path / "student.onnx", x), run(tmp_path / "expected.onnx", x), rtol=1e-6, atol=1e-6)

    result = kerf("student", tmp_path / "teacher.onnx", "-o", tmp_path / "one.onnx", "--drop-layers", "1,2,3")
    assert result.returncode == 0, result.stderr
    onnx.save(encoder([0], w), tmp_path / "expected1.onnx")
    np.testing.assert_allclose(run(tmp_path / "one.onnx", x), run(tmp_path / "expected1.onnx", x), rtol=1e-6, atol=1e-6)

    # Distill the two-layer student; its last hidden state also learns the teacher's through a projection.
    np.savez(tmp_path / "train.npz", x=np.random.default_rng(2).standard_normal((256, WIDTH)).astype(np.float32))
    before = float(np.mean((run(tmp_path / "student.onnx", x) - run(tmp_path / "teacher.onnx", x)) ** 2))
    result = kerf("distill", tmp_path / "teacher.onnx", tmp_path / "student.onnx", "--data", tmp_path / "train.npz",
                  "--output-loss", "mse", "--match", "/layers.2/out=/layers.3/out:cosine@0.5", "--optimizer", "adam",
                  "--lr", "0.01", "--epochs", 10)
    assert result.returncode == 0, result.stderr
    after = float(np.mean((run(tmp_path / "student.onnx", x) - run(tmp_path / "teacher.onnx", x)) ** 2))
    assert after < before * 0.5, (before, after)
    kept = onnx.load(str(tmp_path / "student.onnx"))
    assert len(kept.graph.node) == 8 and not any("projection" in t.name for t in kept.graph.initializer)


def test_student_errors_are_one_line_and_write_nothing(tmp_path):
    onnx.save(encoder(range(2), weights()), tmp_path / "teacher.onnx")
    out = tmp_path / "student.onnx"
    for extra, needle in [(["--drop-layers", "7"], "no layer 7"), (["--drop-layers", "0,1"], "every layer"),
                          (["--drop-layers", "odd"], "--drop-layers"), (["--narrow", "2"], "narrow")]:
        result = kerf("student", tmp_path / "teacher.onnx", "-o", out, *extra)
        assert result.returncode == 1, (extra, result.stdout)
        assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("kerf: ")
        assert not out.exists()
    result = kerf("distill", tmp_path / "teacher.onnx", tmp_path / "teacher.onnx", "--data", tmp_path / "none.npz",
                  "--match", "hidden")
    assert result.returncode == 1 and "--match" in result.stderr
