"""The `kerf` command-line tool: Swift-native runs agree with ONNX Runtime, and every error is
one readable line with a non-zero exit. The binary is $KERF_CLI (default .build/release/kerf)."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))
import models  # noqa: E402

KERF = os.environ.get("KERF_CLI", os.path.join(ROOT, ".build", "release", "kerf"))


def kerf(*args):
    return subprocess.run([KERF, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name,build,input_name,shape", [
    ("mlp", lambda: models.mlp(in_features=16, hidden=32, classes=10), "input", (5, 16)),
    ("cnn", lambda: models.cnn(channels=8, size=8, classes=5), "image", (3, 3, 8, 8)),
])
def test_run_matches_onnxruntime(tmp_path, name, build, input_name, shape):
    model = build()
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    x = models.random_feed(shape)
    np.save(tmp_path / "x.npy", x)
    result = kerf("run", path, "--input", f"{input_name}=" + str(tmp_path / "x.npy"), "-o", tmp_path / "out.npz", "--threads", 1)
    assert result.returncode == 0, result.stderr
    got = np.load(tmp_path / "out.npz")
    expected = models.run_ort(model, {input_name: x})
    assert set(got.files) == set(expected)
    for key, want in expected.items():
        np.testing.assert_allclose(got[key], want, rtol=1e-4, atol=1e-5)


def test_run_returns_named_intermediate_values(tmp_path):
    model = models.cnn(channels=8, size=8, classes=5)
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    x = models.random_feed((2, 3, 8, 8))
    np.save(tmp_path / "x.npy", x)
    names = ["block1_conv", "relu1", "pooled", "logits"]  # the first three are fused away by default
    result = kerf("run", path, "--input", f"image={tmp_path / 'x.npy'}", *[a for n in names for a in ("--value", n)],
                  "-o", tmp_path / "out.npz")
    assert result.returncode == 0, result.stderr
    got = np.load(tmp_path / "out.npz")
    visible = onnx.ModelProto()
    visible.CopyFrom(model)
    visible.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names[:3])
    expected = models.run_ort(visible, {"image": x})
    assert sorted(got.files) == sorted(names)
    for name in names:
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5)
    missing = kerf("run", path, "--input", f"image={tmp_path / 'x.npy'}", "--value", "absent")
    assert missing.returncode != 0 and "absent" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1


def test_inspect_reports_interface_ops_and_parameters(tmp_path):
    path = tmp_path / "cnn.onnx"
    onnx.save(models.cnn(channels=8, size=8, classes=5), path)
    result = kerf("inspect", path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "image: float32 [N, 3, 8, 8]" in out
    assert "logits: float32 [N, 5]" in out
    assert "Conv                     2" in out and "BatchNormalization       2" in out
    params = sum(int(np.prod(t.dims)) for t in onnx.load(path).graph.initializer)
    assert f"parameters: {params} " in out


def test_bench_prints_latency(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(models.mlp(), path)
    result = kerf("bench", path, "--batch", 4, "--runs", 3, "--warmup", 1)
    assert result.returncode == 0, result.stderr
    assert "median:" in result.stdout and "batch: 4" in result.stdout


def test_bench_profile_lists_each_operator_type_of_the_plan(tmp_path):
    path = tmp_path / "cnn.onnx"
    onnx.save(models.cnn(), path)
    result = kerf("bench", path, "--batch", 2, "--runs", 3, "--warmup", 1, "--profile")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("operator"))
    end = next(i for i, line in enumerate(lines) if line.startswith("total"))
    rows = [line.split() for line in lines[start + 1:end]]
    steps = {row[0]: int(row[3]) for row in rows}
    assert "kerf.NhwcConv" in steps and "Gemm" in steps  # convolutions run channels-last
    times = [float(row[1]) for row in rows]
    assert times == sorted(times, reverse=True) and all(t >= 0 for t in times)
    total = float(next(line for line in lines if line.startswith("total")).split()[1])
    assert abs(total - sum(times)) < 1e-3 + 1e-6 * len(times) and total > 0
    # Then the slowest single steps by node name, each no slower than its operator type's total.
    slow_start = next(i for i, line in enumerate(lines) if line.startswith("slowest steps"))
    slow = [line.split() for line in lines[slow_start + 1:] if line.strip()]
    assert 0 < len(slow) <= 15 and all(row[2] in steps for row in slow)
    step_times = [float(row[1]) for row in slow]
    assert step_times == sorted(step_times, reverse=True)
    assert all(float(row[1]) <= dict((r[0], float(r[1])) for r in rows)[row[2]] + 1e-4 for row in slow)
    node_names = {n.name for n in onnx.load(path).graph.node}
    assert any(row[0].startswith(tuple(node_names)) for row in slow)


def test_bench_dim_sets_a_named_symbolic_dimension(tmp_path):
    model = models.mlp(in_features=16, hidden=32, classes=10)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "rows"
    path = tmp_path / "mlp.onnx"
    onnx.save(model, path)
    result = kerf("bench", path, "--dim", "rows=7", "--runs", 2, "--warmup", 0, "--profile")
    assert result.returncode == 0, result.stderr
    assert "inputs: input [7, 16]" in result.stdout
    assert "inputs: input [1, 16]" in kerf("bench", path, "--runs", 1, "--warmup", 0).stdout
    bad = kerf("bench", path, "--dim", "rows=0")
    assert bad.returncode != 0 and "--dim" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_memory_limit_refuses_what_does_not_fit(tmp_path):
    """--memory-limit bounds all tensor memory: 1000 bytes cannot hold the MLP's weights, and the
    refusal is one line naming the limit, not an abort."""
    path = tmp_path / "mlp.onnx"
    onnx.save(models.mlp(), path)
    for command in (["bench", path, "--runs", 1, "--warmup", 0], ["run", path]):
        result = kerf(*command, "--memory-limit", 1000)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert "allocation limit is 1000 bytes" in lines[0], result.stderr
    assert kerf("bench", path, "--runs", 1, "--warmup", 0, "--memory-limit", 1 << 30).returncode == 0


@pytest.mark.parametrize("shape", [[1 << 20, 1 << 20], [1 << 40, 1 << 40], ["n", 1 << 30]])
def test_bench_refuses_random_inputs_too_large_to_make(tmp_path, shape):
    """A declared input shape of terabytes (or one whose size overflows) is refused with one
    line naming the input, not allocated (the process aborted)."""
    relu = onnx.helper.make_node("Relu", ["huge"], ["y"])
    graph = onnx.helper.make_graph([relu], "g", [onnx.helper.make_tensor_value_info("huge", onnx.TensorProto.FLOAT, shape)],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)])
    model = onnx.helper.make_model(graph, ir_version=8, opset_imports=[onnx.helper.make_opsetid("", 17)])
    path = tmp_path / "huge.onnx"
    onnx.save(model, path)
    result = kerf("bench", path, "--runs", 1, "--warmup", 0)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "input 'huge'" in lines[0] and "--dim" in lines[0], result.stderr


@pytest.mark.parametrize("make_args,needle", [
    (lambda d: ["inspect", d / "missing.onnx"], "cannot open"),
    (lambda d: ["run", d / "bad.onnx"], "not a valid ONNX protobuf"),
    (lambda d: ["run", d / "unknown.onnx", "--input", "x=" + str(d / "x.npy")], "FooBar"),
    (lambda d: ["run", d / "mlp.onnx", "--input", "input"], "NAME=FILE.npy"),
    (lambda d: ["run", d / "mlp.onnx", "--input", "input=" + str(d / "missing.npy")], "missing.npy"),
    (lambda d: ["run", d / "mlp.onnx", "--input", "input=" + str(d / "x.npy")], "input"),
])
def test_errors_are_one_line_and_exit_nonzero(tmp_path, make_args, needle):
    (tmp_path / "bad.onnx").write_bytes(os.urandom(512))
    onnx.save(models.unknown_op(), tmp_path / "unknown.onnx")
    onnx.save(models.mlp(), tmp_path / "mlp.onnx")
    np.save(tmp_path / "x.npy", np.zeros((2, 3), np.float32))  # wrong shape for the MLP
    result = kerf(*make_args(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kerf: "), result.stderr
    assert needle in lines[0]


def test_prune_writes_a_smaller_nonzero_count_and_a_report(tmp_path):
    import json
    from onnx import numpy_helper
    path = tmp_path / "cnn.onnx"
    model = models.cnn(channels=8, size=8, classes=5)
    onnx.save(model, path)
    out = tmp_path / "pruned.onnx"
    result = kerf("prune", path, "-o", out, "--sparsity", 0.6, "--scope", "global", "--exclude", "fc",
                  "--report", tmp_path / "report.json")
    assert result.returncode == 0, result.stderr
    assert "skipped fc_w: excluded" in result.stdout and f"wrote {out}" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["scope"] == "global" and [t["name"] for t in report["tensors"]] == ["block1_w", "block2_w"]
    pruned = {t.name: numpy_helper.to_array(t) for t in onnx.load(out).graph.initializer}
    zeros = sum(int((pruned[n] == 0).sum()) for n in ("block1_w", "block2_w"))
    assert zeros == round(0.6 * (pruned["block1_w"].size + pruned["block2_w"].size))
    assert (pruned["fc_w"] != 0).all()
    x = models.random_feed((2, 3, 8, 8))
    np.save(tmp_path / "x.npy", x)
    run = kerf("run", out, "--input", f"image={tmp_path / 'x.npy'}", "-o", tmp_path / "y.npz")
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["logits"], models.run_ort(onnx.load(out), {"image": x})["logits"],
                               rtol=1e-4, atol=1e-5)

    # Without -o the file is rewritten in place; 2:4 holds along Conv input channels.
    result = kerf("prune", path, "--method", "2:4")
    assert result.returncode == 0, result.stderr
    w = numpy_helper.to_array(next(t for t in onnx.load(path).graph.initializer if t.name == "block2_w"))
    assert (np.count_nonzero(w.transpose(0, 2, 3, 1).reshape(-1, 4), axis=1) == 2).all()


def test_prune_draws_a_progress_bar_on_a_terminal(tmp_path):
    import pty
    path = tmp_path / "cnn.onnx"
    onnx.save(models.cnn(channels=8, size=8, classes=5), path)
    # stderr on a pseudo-terminal: the bar is drawn only there. Its few hundred bytes fit the
    # terminal's buffer, so it is read after the process ends.
    terminal, child_end = pty.openpty()
    try:
        result = subprocess.run([KERF, "prune", str(path), "-o", str(tmp_path / "p.onnx")], stdout=subprocess.PIPE,
                                stderr=child_end, text=True, timeout=120)
    finally:
        os.close(child_end)
    err = b""
    try:
        while chunk := os.read(terminal, 65536):
            err += chunk
    except OSError:  # EIO: the terminal's other end is closed and everything was read
        pass
    os.close(terminal)
    err = err.decode()
    assert result.returncode == 0, err
    assert "\rprune [" + "." * 30 + "] 0/3 magnitude pruning" in err, err
    assert "\rprune [" + "#" * 30 + "] 3/3 fc_w" in err, err
    plain = kerf("prune", path, "-o", tmp_path / "q.onnx")
    assert plain.returncode == 0 and plain.stderr == "", "no bar when stderr is not a terminal"


def test_channel_prune_keeps_multiples_of_channel_multiple(tmp_path):
    """--channel-multiple 16: the 40 tied channels of the residual CNN keep 32 (the multiple of 16
    nearest to 70%), not 28; the file runs as ONNX Runtime runs it."""
    path = tmp_path / "cnn.onnx"
    onnx.save(models.cnn(channels=40, size=8, classes=5), path)
    kept = {}
    for multiple in (1, 16):
        out = tmp_path / f"pruned{multiple}.onnx"
        result = kerf("prune", path, "-o", out, "--method", "channel", "--sparsity", 0.3, "--channel-multiple", multiple)
        assert result.returncode == 0, result.stderr
        shapes = {t.name: tuple(t.dims) for t in onnx.load(out).graph.initializer}
        kept[multiple] = (shapes["block1_w"][0], shapes["block2_w"][0])
    assert kept == {1: (28, 28), 16: (32, 32)}, kept
    x = models.random_feed((2, 3, 8, 8))
    np.save(tmp_path / "x.npy", x)
    run = kerf("run", tmp_path / "pruned16.onnx", "--input", f"image={tmp_path / 'x.npy'}", "-o", tmp_path / "y.npz")
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["logits"],
                               models.run_ort(onnx.load(tmp_path / "pruned16.onnx"), {"image": x})["logits"], rtol=1e-4, atol=1e-5)


def test_prune_errors_are_one_line_and_leave_the_file_alone(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(models.mlp(), path)
    original = path.read_bytes()
    for args, message in ((("--method", "5:4"), "N:M needs"), (("--sparsity", "1.2"), "sparsity must be in"),
                          (("--scope", "all"), "--scope must be"),
                          (("--method", "channel", "--channel-multiple=-1"), "channel multiple must be in")):
        result = kerf("prune", path, *args)
        assert result.returncode == 1 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert path.read_bytes() == original


def test_sensitivity_prints_a_table(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(models.mlp(in_features=16, hidden=32, classes=10), path)
    x = models.random_feed((20, 16))
    np.savez(tmp_path / "data.npz", input=x, labels=np.arange(20) % 10)
    result = kerf("sensitivity", path, "--data", tmp_path / "data.npz", "--levels", "0.5,0.9", "--json", tmp_path / "t.json")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines() if line.strip().startswith(("w1", "w2"))]
    assert [(l[0], l[1]) for l in lines] == [("w1", "50.0%"), ("w1", "90.0%"), ("w2", "50.0%"), ("w2", "90.0%")]
    assert float(lines[0][2]) < float(lines[1][2]), "90% pruning changes the outputs more than 50%"
    assert "20 samples, unpruned accuracy" in result.stdout


def test_bench_compare_ort_prints_both_engines_and_their_ratio(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(models.mlp(), path)
    result = kerf("bench", path, "--batch", 4, "--runs", 5, "--warmup", 1, "--threads", 1, "--compare-ort")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.startswith(("kerf ", "onnxruntime "))}
    assert set(rows) == {"kerf", "onnxruntime"}, result.stdout
    kerf_median, ort_median = float(rows["kerf"][1]), float(rows["onnxruntime"][1])
    ratio = float(result.stdout.split("kerf/ort median ratio: ")[1].split()[0])
    assert ratio == pytest.approx(kerf_median / ort_median, rel=0.05, abs=2e-3)


def test_quantize_static_and_dynamic(tmp_path):
    import json
    path = tmp_path / "mlp.onnx"
    model = models.mlp(in_features=16, hidden=32, classes=10)
    onnx.save(model, path)
    x = models.random_feed((64, 16))
    np.savez(tmp_path / "calib.npz", input=x)
    out = tmp_path / "static.onnx"
    result = kerf("quantize", path, "-o", out, "--mode", "static", "--calibration", tmp_path / "calib.npz", "--method", "entropy",
                  "--batch-size", 16, "--report", tmp_path / "report.json")
    assert result.returncode == 0, result.stderr
    assert "static int8 quantization, entropy calibration, uint8 activations" in result.stdout
    assert "SQNR" in result.stdout and "against float on 64 calibration samples" in result.stdout and f"wrote {out}" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert [n["op_type"] for n in report["nodes"]] == ["Gemm", "Gemm"] and report["calibration_batches"] == 4
    quantized = onnx.load(out)
    onnx.checker.check_model(quantized, full_check=True)
    np.save(tmp_path / "x.npy", x[:5])
    run = kerf("run", out, "--input", f"input={tmp_path / 'x.npy'}", "-o", tmp_path / "y.npz")
    assert run.returncode == 0, run.stderr
    # ONNX Runtime as written (exact QDQ semantics) or with its fused int8 kernels, whose u8s8
    # pair sums saturate as Kerf's fused kernels do (see bindings/python/tests/test_quantize.py).
    got = np.load(tmp_path / "y.npz")["probs"]
    references = [models.run_ort(quantized, {"input": x[:5]}, optimize=o)["probs"] for o in (False, True)]
    assert min(np.abs(got - r).max() for r in references) < 1e-3

    # Agreement on separate validation data.
    np.savez(tmp_path / "valid.npz", input=models.random_feed((20, 16)))
    result = kerf("quantize", path, "-o", tmp_path / "dynamic.onnx", "--mode", "dynamic", "--validation", tmp_path / "valid.npz",
                  "--report", tmp_path / "validated.json")
    assert result.returncode == 0, result.stderr
    assert "against float on 20 validation samples" in result.stdout
    agreement = json.loads((tmp_path / "validated.json").read_text())["agreement"]
    assert agreement["data"] == "validation" and agreement["samples"] == 20

    # Without -o the file is rewritten in place.
    result = kerf("quantize", path, "--mode", "dynamic", "--no-per-channel")
    assert result.returncode == 0, result.stderr
    assert "MatMulInteger" in {n.op_type for n in onnx.load(path).graph.node}


def test_quantize_errors_are_one_line_and_leave_the_file_alone(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(models.mlp(), path)
    original = path.read_bytes()
    np.savez(tmp_path / "bad.npz", other=models.random_feed((4, 16)))
    for args, message in ((("--mode", "static"), "needs calibration data"), (("--mode", "int4"), "--mode must be"),
                          (("--mode", "static", "--calibration", tmp_path / "bad.npz"), "input"),
                          (("--mode", "static", "--calibration", tmp_path / "missing.npz"), "missing.npz")):
        result = kerf("quantize", path, *args)
        assert result.returncode == 1 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert path.read_bytes() == original


def test_killed_in_place_quantization_leaves_the_original(tmp_path):
    import signal
    import time
    path = tmp_path / "mlp.onnx"
    # 60000 calibration runs of a 2048-wide layer take seconds on any CPU (2.8 s on this
    # project's machine, AVX-512 or capped at AVX2): the kill lands well inside calibration.
    onnx.save(models.mlp(in_features=64, hidden=2048, classes=10), path)
    original = path.read_bytes()
    np.savez(tmp_path / "calib.npz", input=models.random_feed((60000, 64)))
    process = subprocess.Popen([KERF, "quantize", str(path), "--mode", "static", "--calibration", str(tmp_path / "calib.npz"),
                                "--batch-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)
    assert process.poll() is None, "calibration finished before the kill; use more batches"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert path.read_bytes() == original


@pytest.mark.parametrize("command", [["quantize", "--mode", "dynamic"], ["prune", "--sparsity", 0.5]])
def test_compressing_a_model_with_external_data_leaves_the_source_byte_identical(tmp_path, command):
    from onnx.external_data_helper import convert_model_to_external_data
    model = models.mlp(in_features=64, hidden=128, classes=10)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    src = tmp_path / "model.onnx"
    onnx.save(model, src)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    out = tmp_path / "small.onnx"
    result = kerf(command[0], src, "-o", out, *command[1:])
    assert result.returncode == 0, result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.data", "small.onnx", "small.onnx.data"]
    onnx.checker.check_model(str(out), full_check=True)
    x = models.random_feed((3, 64))
    assert models.run_ort(onnx.load(str(out)), {"input": x})["probs"].shape == (3, 10)
    # In place: the original's data file is not the one written.
    result = kerf(command[0], src, *command[1:])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.onnx.data").read_bytes() == before["model.onnx.data"]
    assert models.run_ort(onnx.load(str(src)), {"input": x})["probs"].shape == (3, 10)
